"""Database tables (SQLModel). Schema changes go through Alembic (`cert_authority/migrations`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc_column(nullable: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


class IssuedCertificateRow(SQLModel, table=True):
    """A certificate the branch CA issued, with its revocation state."""

    __tablename__ = "issued_certificate"

    serial: str = Field(primary_key=True, max_length=40)  # upper-case hex
    subject: str
    uscc: str | None = Field(default=None, index=True, max_length=18)
    not_before: dt.datetime = Field(sa_column=_utc_column())
    not_after: dt.datetime = Field(sa_column=_utc_column())
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_label: str | None = Field(default=None, max_length=100)
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    revocation_reason: str | None = Field(default=None, max_length=40)


class CrlRow(SQLModel, table=True):
    """Every CRL the branch published (the newest is served)."""

    __tablename__ = "crl"

    number: int = Field(primary_key=True)
    this_update: dt.datetime = Field(sa_column=_utc_column())
    next_update: dt.datetime = Field(sa_column=_utc_column())
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CounterRow(SQLModel, table=True):
    """Named monotonic counters, incremented atomically in the database (safe across workers)."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=40)
    value: int = 0


# --- licence-type registry ---------------------------------------------------------------------


class DepartmentRow(SQLModel, table=True):
    """A government department known to the authority: it issues licences, uses them, or both."""

    __tablename__ = "department"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    uscc: str = Field(max_length=18, unique=True)  # checked with keys.uscc.validate_uscc
    area_code: str = Field(max_length=6)  # GB/T 2260 administrative division code
    level: str = Field(max_length=10)  # province, city, district
    roles: str = Field(max_length=40)  # comma-separated: issuer, user
    contact: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = Field(sa_column=_utc_column())


class LicenceTypeRow(SQLModel, table=True):
    """A registered licence type (证照类型). Its templates are in `template_version`."""

    __tablename__ = "licence_type"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=21, unique=True)  # GB/T 36904 type code
    name: str = Field(max_length=50)
    authority_name: str = Field(max_length=100)
    authority_uscc: str = Field(max_length=18)
    issuer_level: str = Field(max_length=10)
    holder_category: str = Field(max_length=20)
    spec_json: str = Field(sa_column=Column(Text, nullable=False))  # the LicenceTypeSpec without template
    created_at: dt.datetime = Field(sa_column=_utc_column())
    created_by: str = Field(max_length=40)  # "apikey:<id>" or "cli"


class LicenceTypeIssuerRow(SQLModel, table=True):
    """A department allowed to issue a licence type."""

    __tablename__ = "licence_type_issuer"

    type_id: int = Field(sa_column=Column(Integer, ForeignKey("licence_type.id"), primary_key=True))
    department_id: int = Field(sa_column=Column(Integer, ForeignKey("department.id"), primary_key=True))


class TemplateVersionRow(SQLModel, table=True):
    """One template of a licence type. Immutable: a change is a new version, never an update,
    because issued licences record the version they were rendered with."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("type_id", "version", name="uq_template_version_type_version"),)

    id: int | None = Field(default=None, primary_key=True)
    type_id: int = Field(sa_column=Column(Integer, ForeignKey("licence_type.id"), nullable=False))
    version: int  # 1, 2, 3... per type
    template_json: str = Field(sa_column=Column(Text, nullable=False))
    background_sm3: str = Field(max_length=64)  # the background JPEG in the file store
    note: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = Field(sa_column=_utc_column())
    created_by: str = Field(max_length=40)


class ApiKeyRow(SQLModel, table=True):
    """An API key. Only the SHA-256 of the key is kept: keys are 32 random bytes, so a fast hash
    is enough (nothing to brute-force), and a stolen database yields no usable key."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=16, unique=True)  # shown in lists, used to revoke
    key_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=10)  # admin, issuer, user, auditor
    department_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("department.id"), nullable=True)
    )
    created_at: dt.datetime = Field(sa_column=_utc_column())
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))

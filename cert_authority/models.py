"""Database tables (SQLModel). Schema changes go through Alembic (`cert_authority/migrations`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, DateTime, LargeBinary
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

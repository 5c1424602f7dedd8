"""Database tables (SQLModel). Schema changes go through Alembic (`cert_authority/migrations`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def _utc_column(nullable: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


class IssuedCertificateRow(SQLModel, table=True):
    """A certificate the branch CA issued, with its revocation state."""

    __tablename__ = "issued_certificate"
    # Read with every verification: the count of revocations and the last one (pki.certificates).
    __table_args__ = (Index("ix_issued_certificate_revoked_at_serial", "revoked_at", "serial"),)

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


# --- e-seals and licences --------------------------------------------------------------------------


class SealRow(SQLModel, table=True):
    """An e-seal of a department (电子印章), from its application to its filing (备案) and beyond.

    applied → active (approved: the branch CA issued the seal certificate and signed the SES_Seal
    as seal maker (制章者), or a seal made by the provincial platform was checked and filed)
    → suspended ⇄ active → revoked; or applied → rejected. Only an active seal seals anything.
    An application has no seal code, certificate, SES_Seal or validity yet (an imported one has its
    SES_Seal). Files (the DER SES_Seal, the PNG picture) are in the file store."""

    __tablename__ = "seal"

    id: int | None = Field(default=None, primary_key=True)
    department_id: int = Field(sa_column=Column(Integer, ForeignKey("department.id"), nullable=False, index=True))
    es_id: str | None = Field(default=None, max_length=64, unique=True)  # GB/T 38540 esID, once filed
    name: str = Field(max_length=200)
    seal_type: int  # GB/T 38540: 1 organisation, 2 person
    purpose: str | None = Field(default=None, max_length=50)
    legal_representative: str | None = Field(default=None, max_length=50)  # 法定代表人; required since 0009
    origin: str = Field(
        default="made", sa_column=Column(String(10), nullable=False, server_default="made")
    )  # made (by our branch CA) or imported (made by the provincial seal platform)
    cert_serial: str | None = Field(
        default=None, sa_column=Column(String(40), ForeignKey("issued_certificate.serial"), nullable=True, unique=True)
    )
    seal_sm3: str | None = Field(default=None, max_length=64)  # DER SESeal in the file store
    picture_sm3: str = Field(max_length=64)  # PNG in the file store
    picture_fingerprint: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # seals.picture
    width_mm: int
    height_mm: int
    requested_start: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    requested_end: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    valid_start: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    valid_end: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    status: str = Field(max_length=10, index=True)  # applied, active, suspended, rejected, revoked
    decided_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))  # approved/rejected
    decided_by: str | None = Field(default=None, max_length=40)
    decision_note: str | None = Field(default=None, max_length=500)  # the reason for a rejection
    suspended_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    suspension_reason: str | None = Field(default=None, max_length=200)
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    revocation_reason: str | None = Field(default=None, max_length=40)  # RFC 5280 reason name
    revocation_note: str | None = Field(default=None, max_length=200)
    created_at: dt.datetime = Field(sa_column=_utc_column())  # the application
    created_by: str = Field(max_length=40)


class LicenceCounterRow(SQLModel, table=True):
    """Licence serials and numbers: named counters incremented atomically in their own short
    transaction (UPDATE ... RETURNING), so a value handed out is never handed out again."""

    __tablename__ = "licence_counter"

    name: str = Field(primary_key=True, max_length=80)
    value: int = 0


class LicenceRow(SQLModel, table=True):
    """One version of an issued licence: the GB/T 36903 metadata (codes in comments), the face
    data and the SM3 names of its sealed files. A change (变更) adds a row; rows are never deleted."""

    __tablename__ = "licence"
    __table_args__ = (
        UniqueConstraint("type_code", "issuer_code", "serial", "version", name="uq_licence_serial_version"),
        # Lists page by key, newest first (issuing.queries): a page is an index range at any depth.
        Index("ix_licence_created_at_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(max_length=120, unique=True)  # ZZBS, GB/T 36904
    type_code: str = Field(max_length=21, index=True)  # ZZLXDM
    serial: str = Field(max_length=32)
    version: int
    name: str = Field(max_length=50)  # ZZMC
    licence_number: str = Field(max_length=40, index=True)  # ZZBH
    issuer_name: str = Field(max_length=100)  # ZZBFJG
    issuer_code: str = Field(max_length=18, index=True)  # ZZBFJGDM
    issuer_level: str = Field(max_length=10)  # ZZBFJGJB
    department_id: int = Field(sa_column=Column(Integer, ForeignKey("department.id"), nullable=False))
    issue_date: dt.date = Field(sa_column=Column(Date, nullable=False))  # ZZBFRQ
    # CZZT, CZZTDM and the face data are personal: in the database they are only in
    # `personal_sealed` and `face_sealed` (SM4-GCM, see store.personal and issuing.personal); these
    # three columns are NULL there (rows from
    # before 0014 hold them until `ecas data encrypt`) and filled in rows read through
    # issuing.personal.open_licence.
    holder_name: str = Field(default=None, sa_column=Column(Text, nullable=True))  # CZZT
    holder_code: str = Field(default=None, sa_column=Column(String(40), nullable=True))  # CZZTDM
    holder_code_type: str = Field(max_length=3)  # CZZTDMLX: 111 ID number, 001 USCC
    valid_from: dt.date = Field(sa_column=Column(Date, nullable=False))  # ZZYXQQSRQ
    valid_until: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))  # ZZYXQJZRQ
    seal_id: int = Field(sa_column=Column(Integer, ForeignKey("seal.id"), nullable=False))
    seal_name: str = Field(max_length=200)  # ZZQZMC
    sealed_by: str = Field(max_length=200)  # ZZQZR: the seal certificate's subject
    sealed_at: dt.datetime = Field(sa_column=_utc_column())  # ZZQZSJ
    template_version: int
    face_json: str = Field(default=None, sa_column=Column(Text, nullable=True))  # face values, by key
    personal_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # holder name, code
    face_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    holder_code_index: str | None = Field(default=None, max_length=64, index=True)  # HMAC-SM3 blind index
    photo_sm3: str | None = Field(default=None, max_length=64)
    pdf_sm3: str = Field(max_length=64)
    ofd_sm3: str = Field(max_length=64)
    png_sm3: str | None = Field(default=None, max_length=64)  # rendered on first request
    status: str = Field(max_length=12, index=True)  # issued, superseded, revoked, cancelled
    status_reason: str | None = Field(default=None, max_length=500)
    status_changed_at: dt.datetime = Field(sa_column=_utc_column())
    superseded_by: str | None = Field(default=None, max_length=120)
    created_at: dt.datetime = Field(sa_column=_utc_column())
    created_by: str = Field(max_length=40)
    # new (新办), stock (存量: a paper licence converted; issue_date and validity are the paper's,
    # created_at/sealed_at the conversion) or paper_twin (同步制发: the department's own number).
    origin: str = Field(
        default="new", sa_column=Column(String(12), nullable=False, server_default="new", index=True)
    )
    original_issuer_name: str | None = Field(default=None, max_length=100)  # printed, if not issuer_name


class LicenceEventRow(SQLModel, table=True):
    """The status history of a licence version: every transition, who made it, when and why."""

    __tablename__ = "licence_event"

    id: int | None = Field(default=None, primary_key=True)
    licence_id: int = Field(sa_column=Column(Integer, ForeignKey("licence.id"), nullable=False, index=True))
    identifier: str = Field(max_length=120)
    previous_status: str | None = Field(default=None, max_length=12)
    status: str = Field(max_length=12)
    action: str = Field(max_length=12)  # issue, change, revoke, cancel
    reason: str | None = Field(default=None, max_length=500)
    at: dt.datetime = Field(sa_column=_utc_column())
    actor: str = Field(max_length=40)
    # The HMAC-SM3 chain (store/chain.py): set when the row is written, never changed.
    chain_partition: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_prev: str | None = Field(default=None, max_length=64)
    chain_mac: str | None = Field(default=None, max_length=64)


class AuditEventRow(SQLModel, table=True):
    """Who did what to which licence or seal, and when. Holder codes only masked (personal data)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(sa_column=_utc_column())
    actor: str = Field(max_length=40)
    actor_role: str = Field(max_length=10)
    actor_department: str | None = Field(default=None, max_length=18)
    action: str = Field(max_length=20, index=True)
    target: str = Field(max_length=120, index=True)  # licence identifier or seal:<id>
    holder_code_masked: str | None = Field(default=None, max_length=40)
    detail_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The HMAC-SM3 chain (store/chain.py): set when the row is written, never changed.
    chain_partition: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_prev: str | None = Field(default=None, max_length=64)
    chain_mac: str | None = Field(default=None, max_length=64)


class IdempotencyRow(SQLModel, table=True):
    """An Idempotency-Key already used to issue a licence, per issuing department. The primary key
    settles concurrent duplicates: the second insert fails and its caller gets the first licence."""

    __tablename__ = "idempotency_key"

    scope: str = Field(primary_key=True, max_length=18)  # the issuing department's USCC
    key: str = Field(primary_key=True, max_length=200)
    request_sm3: str = Field(max_length=64)
    licence_id: int = Field(sa_column=Column(Integer, ForeignKey("licence.id"), nullable=False))
    created_at: dt.datetime = Field(sa_column=_utc_column())


class HolderAccountRow(SQLModel, table=True):
    """A holder's built-in login (citizen or company), bound to the holder code on their licences."""

    __tablename__ = "holder_account"

    id: int | None = Field(default=None, primary_key=True)
    # ID number or USCC, and name: personal, sealed in `personal_sealed` (NULL here since 0014, as
    # for licences); the account is found by `holder_code_index`.
    holder_code: str = Field(default=None, sa_column=Column(String(18), nullable=True, unique=True))
    name: str = Field(default=None, sa_column=Column(String(200), nullable=True))
    personal_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    holder_code_index: str | None = Field(default=None, max_length=64, unique=True)
    password_hash: str = Field(max_length=200)  # argon2id, with its own salt and parameters
    created_at: dt.datetime = Field(sa_column=_utc_column())
    disabled: bool = False


class HolderSessionRow(SQLModel, table=True):
    """A logged-in holder: the SHA-256 of the session token (the token itself is never stored)."""

    __tablename__ = "holder_session"

    token_sha256: str = Field(primary_key=True, max_length=64)
    holder_id: int = Field(sa_column=Column(Integer, ForeignKey("holder_account.id"), nullable=False))
    expires_at: dt.datetime = Field(sa_column=_utc_column())


class ShowTokenUseRow(SQLModel, table=True):
    """A show token accepted, and by whom: the primary key makes "once, wherever it is checked
    first" hold across workers and departments (the second insert fails). Rows past the token's
    expiry may be deleted."""

    __tablename__ = "show_token_use"

    nonce: str = Field(primary_key=True, max_length=32)
    verifier: str = Field(max_length=40)  # department USCC, or the API key's role
    identifier: str = Field(max_length=120)
    expires_at: dt.datetime = Field(sa_column=_utc_column())


class UseCodeRow(SQLModel, table=True):
    """用证码: the holder's authorisation for one department to read one licence for one purpose,
    a limited number of times before it expires; the code itself is stored only as its SHA-256."""

    __tablename__ = "use_code"

    id: int | None = Field(default=None, primary_key=True)
    code_sha256: str = Field(max_length=64, unique=True)
    holder_id: int = Field(sa_column=Column(Integer, ForeignKey("holder_account.id"), nullable=False))
    identifier: str = Field(max_length=120, index=True)
    department_uscc: str = Field(max_length=18)
    purpose: str = Field(max_length=200)
    max_uses: int
    uses: int = 0
    expires_at: dt.datetime = Field(sa_column=_utc_column())
    withdrawn_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: dt.datetime = Field(sa_column=_utc_column())


class DutyRuleRow(SQLModel, table=True):
    """依职责用证: a department may read licences of a type without the holder's consent, for its
    duties; for any use, or only in cases of the matters listed; until `valid_until` (inclusive, on
    China's calendar) unless withdrawn. Rows are kept after withdrawal (who granted what, when)."""

    __tablename__ = "duty_rule"

    id: int | None = Field(default=None, primary_key=True)
    department_uscc: str = Field(max_length=18, index=True)
    type_code: str = Field(max_length=40)
    matters_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON list; None: any
    valid_until: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    created_at: dt.datetime = Field(sa_column=_utc_column())
    created_by: str = Field(max_length=40)
    withdrawn_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    withdrawn_by: str | None = Field(default=None, max_length=40)


class SharedFileRow(SQLModel, table=True):
    """A temporary link to an annotated copy (加注件): the link's token stored as its SHA-256. The
    copy is made on the link's first download (`file_sm3` None until then) from what the use
    recorded here: the department, the cause, the time of the use and the licence's sealed PDF."""

    __tablename__ = "shared_file"

    token_sha256: str = Field(primary_key=True, max_length=64)
    file_sm3: str | None = Field(default=None, max_length=64, index=True)  # found by a file's verification
    identifier: str = Field(max_length=120)
    expires_at: dt.datetime = Field(sa_column=_utc_column())
    department_uscc: str | None = Field(default=None, max_length=18)
    cause: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    used_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    licence_sm3: str | None = Field(default=None, max_length=64)


class StaffAccountRow(SQLModel, table=True):
    """A department's staff member who signs in to the web console or the counter page; acts with
    the role and department of the account, as an API key does."""

    __tablename__ = "staff_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    role: str = Field(max_length=10)  # admin, issuer, user, auditor
    department_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("department.id"), nullable=True)
    )
    password_hash: str = Field(max_length=200)  # argon2id
    created_at: dt.datetime = Field(sa_column=_utc_column())
    disabled: bool = False


class StaffSignKeyRow(SQLModel, table=True):
    """An SM2 public key registered for a staff account to sign in with (access/signin.py): a
    software key file for the demo, a USB key (UKey) in a deployment."""

    __tablename__ = "staff_sign_key"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(sa_column=Column(Integer, ForeignKey("staff_account.id"), nullable=False, index=True))
    public_key_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    fingerprint: str = Field(max_length=64, unique=True)  # SM3 of the SubjectPublicKeyInfo
    label: str = Field(max_length=100)
    registered_at: dt.datetime = Field(sa_column=_utc_column())
    registered_by: str = Field(max_length=40)
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class StaffChallengeRow(SQLModel, table=True):
    """A sign-in challenge issued after the password was right, spent by the first answer."""

    __tablename__ = "staff_challenge"

    challenge_sha256: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(sa_column=Column(Integer, ForeignKey("staff_account.id"), nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: dt.datetime = Field(sa_column=_utc_column())


class StaffSessionRow(SQLModel, table=True):
    """A signed-in staff member: the SHA-256 of the session cookie's token."""

    __tablename__ = "staff_session"

    token_sha256: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(sa_column=Column(Integer, ForeignKey("staff_account.id"), nullable=False))
    expires_at: dt.datetime = Field(sa_column=_utc_column())


class BatchJobRow(SQLModel, table=True):
    """A batch file uploaded in the console, issued in the background; its counts are updated
    after every chunk, so any worker can show the progress."""

    __tablename__ = "batch_job"

    id: int | None = Field(default=None, primary_key=True)
    type_code: str = Field(max_length=40)
    issuer_uscc: str = Field(max_length=18, index=True)
    filename: str = Field(max_length=200)
    file_sm3: str = Field(max_length=64)  # the uploaded file, in the file store
    created_by: str = Field(max_length=40)
    created_at: dt.datetime = Field(sa_column=_utc_column())
    updated_at: dt.datetime = Field(sa_column=_utc_column())
    state: str = Field(max_length=10)  # queued, running, done, failed
    total: int
    issued: int = 0
    skipped: int = 0  # issued by an earlier run of the same rows
    rejected: int = 0
    rejects_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # [[line, reason], ...]
    message: str | None = Field(default=None, max_length=500)


class RateWindowRow(SQLModel, table=True):
    """Requests one client made in one minute (`cert_authority.http.middleware.rate_limit`), counted in the database
    so that every worker sees the same number (on PostgreSQL; on SQLite each process counts in memory)."""

    __tablename__ = "rate_window"

    client: str = Field(primary_key=True, max_length=80)
    window_start: int = Field(sa_column=Column(BigInteger, primary_key=True))  # Unix seconds
    hits: int


# --- matters and cases at the counter (办事事项, 办件) -----------------------------------------------


class MatterRow(SQLModel, table=True):
    """A service matter (办事事项): its handling departments and required materials, as defined
    (the MatterSpec as JSON). Immutable once registered: cases keep a copy of their checklist."""

    __tablename__ = "matter"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: dt.datetime = Field(sa_column=_utc_column())
    created_by: str = Field(max_length=40)


class StandingAuthorisationRow(SQLModel, table=True):
    """授权用证: a holder lets one department use their licences in cases of one matter until it
    expires or is withdrawn."""

    __tablename__ = "standing_authorisation"

    id: int | None = Field(default=None, primary_key=True)
    holder_id: int = Field(sa_column=Column(Integer, ForeignKey("holder_account.id"), nullable=False))
    holder_code: str | None = Field(default=None, max_length=18)  # NULL since 0014: only its index is kept
    holder_code_index: str | None = Field(default=None, max_length=64, index=True)  # HMAC-SM3 blind index
    department_uscc: str = Field(max_length=18)
    matter_code: str = Field(max_length=40)
    expires_at: dt.datetime = Field(sa_column=_utc_column())
    created_at: dt.datetime = Field(sa_column=_utc_column())
    withdrawn_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class CaseRow(SQLModel, table=True):
    """A case (办件) a department opened for an applicant and a matter; closed with a sealed receipt
    (材料复用清单) kept in the file store under `receipt_sm3`."""

    __tablename__ = "service_case"

    id: int | None = Field(default=None, primary_key=True)
    matter_code: str = Field(max_length=40, index=True)
    department_uscc: str = Field(max_length=18, index=True)
    applicant_code: str = Field(default=None, sa_column=Column(String(18), nullable=True))  # as licence.holder_code
    applicant_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    applicant_index: str | None = Field(default=None, max_length=64, index=True)  # HMAC-SM3 blind index
    case_number: str | None = Field(default=None, max_length=60)  # the department's own number
    status: str = Field(max_length=10)  # open, closed
    opened_at: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    opened_by: str = Field(max_length=40)
    closed_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    closed_by: str | None = Field(default=None, max_length=40)
    receipt_sm3: str | None = Field(default=None, max_length=64, index=True)


class CaseMaterialRow(SQLModel, table=True):
    """One required material of a case, copied from the matter when the case is opened; filled in
    when a licence is reused for it (the UPDATE that fills it is the claim: one licence a material)."""

    __tablename__ = "case_material"

    case_id: int = Field(sa_column=Column(Integer, ForeignKey("service_case.id"), primary_key=True))
    position: int = Field(primary_key=True)
    name: str = Field(max_length=100)
    type_code: str | None = Field(default=None, max_length=21)  # None: submitted by the applicant
    identifier: str | None = Field(default=None, max_length=120)
    licence_version: int | None = None
    licence_sm3: str | None = Field(default=None, max_length=64)  # SM3 of the licence's sealed PDF
    basis: str | None = Field(default=None, max_length=20)  # duty_rule, use_code, authorisation
    reused_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    reused_by: str | None = Field(default=None, max_length=40)
    # JSON list of the face fields a show token disclosed; None: every field (the other bases)
    disclosed_fields: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# --- the provincial link (归集): the city's outbox, and the province's copy of every city's ----------


class ExchangeEventRow(SQLModel, table=True):
    """One change for the province (a licence, seal or type event), written in the transaction that
    makes the change. `seq` is stamped after commit, in commit order (`store.outbox.stamp_events`):
    a transaction still open cannot end up behind a sequence number the feed has already shown."""

    __tablename__ = "exchange_event"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64, unique=True)  # the receiver deduplicates on it
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, unique=True))
    kind: str = Field(max_length=30)  # licence.issued, licence.revoked, seal.approved, type.registered...
    subject: str = Field(max_length=120, index=True)  # licence identifier, seal:<esID>, type:<code>
    at: dt.datetime = Field(sa_column=_utc_column())
    day: dt.date = Field(sa_column=Column(Date, nullable=False, index=True))  # China's calendar day of `at`
    payload_json: str = Field(sa_column=Column(Text, nullable=False))


class ExchangePushRow(SQLModel, table=True):
    """The pusher's state per province address: what the province acknowledged, and the failures."""

    __tablename__ = "exchange_push"

    target: str = Field(primary_key=True, max_length=200)  # ECAS_PROVINCE_URL
    acked_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    sent_events: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    failures: int = 0  # consecutive failed attempts (0 after a success)
    total_failures: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    last_attempt_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_success_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class ProvinceCityRow(SQLModel, table=True):
    """Province mode: a city authority registered to push its licences here, with the certificates
    its batches must be signed with (the service certificate, its branch CA, the provincial root)."""

    __tablename__ = "province_city"

    uscc: str = Field(primary_key=True, max_length=18)
    name: str = Field(max_length=100)
    certificate_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # the city's service cert
    branch_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    root_der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # the pinned provincial root
    crl_der: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # newest sent
    acked_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    registered_at: dt.datetime = Field(sa_column=_utc_column())
    last_batch_at: dt.datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Comma-separated area-code prefixes its licences' issuers must be registered in (the digits 3-8
    # of a USCC); None: the first four of the city authority's own (exchange.province.issuer_areas).
    issuer_areas: str | None = Field(default=None, max_length=200)


class ProvinceEventRow(SQLModel, table=True):
    """Province mode: every event a city pushed, once (the primary key refuses a second copy)."""

    __tablename__ = "province_event"
    __table_args__ = (UniqueConstraint("city_uscc", "seq", name="uq_province_event_city_seq"),)

    city_uscc: str = Field(primary_key=True, max_length=18)
    event_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=30)
    subject: str = Field(max_length=120, index=True)
    at: dt.datetime = Field(sa_column=_utc_column())
    day: dt.date = Field(sa_column=Column(Date, nullable=False))
    payload_json: str = Field(sa_column=Column(Text, nullable=False))  # a licence event's: sealed
    received_at: dt.datetime = Field(sa_column=_utc_column())


class ProvinceLicenceRow(SQLModel, table=True):
    """Province mode: a city's licence version as its latest event described it; the sealed files
    are in this instance's file store under their SM3 names once the city has sent them."""

    __tablename__ = "province_licence"

    identifier: str = Field(primary_key=True, max_length=120)
    city_uscc: str = Field(max_length=18, index=True)
    type_code: str = Field(max_length=21)
    issuer_code: str = Field(max_length=18)
    # The holder code is personal: NULL here (rows from before 0017 hold it until `ecas data
    # encrypt`), kept only as its blind index, and sealed in `payload_json` with the rest of the
    # licence (exchange.province: SM4-GCM bound to the identifier).
    holder_code: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    holder_code_index: str | None = Field(default=None, max_length=64, index=True)  # HMAC-SM3 blind index
    status: str = Field(max_length=12)
    status_reason: str | None = Field(default=None, max_length=500)
    superseded_by: str | None = Field(default=None, max_length=120)
    valid_until: dt.date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    pdf_sm3: str = Field(max_length=64)
    ofd_sm3: str = Field(max_length=64)
    files_complete: bool = False  # both sealed files are in the store (they follow the events)
    payload_json: str = Field(sa_column=Column(Text, nullable=False))  # sealed (store.personal)
    updated_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
# --- the issuance transparency log (cert_authority.transparency) ----------------------------------

_LOG_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite numbers only INTEGER PRIMARY KEY rows


class LogEntryRow(SQLModel, table=True):
    """A leaf of the transparency log (`verification.transparency.LogLeaf`), written in the
    transaction of the event it records. Its place in the tree (`leaf_index`) is given later by the
    sequencer, in batches: appenders only insert, so no row is shared between them."""

    __tablename__ = "log_entry"

    id: int | None = Field(default=None, sa_column=Column(_LOG_ID, primary_key=True, autoincrement=True))
    identifier: str = Field(max_length=120, index=True)
    event: str = Field(max_length=12)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, unique=True))
    created_at: dt.datetime = Field(sa_column=_utc_column())


class LogTileRow(SQLModel, table=True):
    """A tile of the tree (C2SP tlog-tiles, height 8): up to 256 hashes of one tree level 8 × level.
    The rightmost tile of each level grows until it is full; a full tile never changes."""

    __tablename__ = "log_tile"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    index: int = Field(sa_column=Column("idx", BigInteger, primary_key=True, autoincrement=False))
    hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # 32 bytes each, left to right


class LogHeadRow(SQLModel, table=True):
    """Every signed tree head, kept (`verification.transparency.SignedTreeHead`)."""

    __tablename__ = "log_head"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    timestamp: int = Field(sa_column=Column(BigInteger, nullable=False))  # milliseconds since the epoch
    origin: str = Field(max_length=200)
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ChainAnchorRow(SQLModel, table=True):
    """A chain head recorded at a point in time (`ecas audit anchor`): the rows up to it can no
    longer be cut off the end of their partition unnoticed. The anchors of one run share `at`; the
    SM3 of the run's heads is what goes to the transparency log (store/chain.py)."""

    __tablename__ = "chain_anchor"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(sa_column=_utc_column())
    chain_partition: int = Field(sa_column=Column(BigInteger, nullable=False))
    chain_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    chain_mac: str = Field(max_length=64)


class PackedFileRow(SQLModel, table=True):
    """A file kept in the file store as a manifest of literal bytes and shared parts
    (`store.packing`): the file's SM3 (the name the records use) → the manifest's SM3."""

    __tablename__ = "packed_file"

    sm3: str = Field(primary_key=True, max_length=64)
    manifest_sm3: str = Field(max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))  # of the file put back together


class StoredFileRow(SQLModel, table=True):
    """A file of the database file store (store/filestore_db.py): named by the SM3 digest of its
    content, the value SM4-GCM-sealed (store/filestore.py)."""

    __tablename__ = "stored_file"

    digest: str = Field(primary_key=True, max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))  # of the stored value, for reports
    stored_at: dt.datetime = Field(sa_column=_utc_column())


class StoredKeyRow(SQLModel, table=True):
    """A private key of the key store, kept in the database when several hosts share it
    (store/keys_db.py): the encrypted PKCS#8 file (SM4-CBC under ECAS_KEK), never the key itself."""

    __tablename__ = "stored_key"

    label: str = Field(primary_key=True, max_length=100)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    stored_at: dt.datetime = Field(sa_column=_utc_column())


class DataKeyRingRow(SQLModel, table=True):
    """The data-encryption keys (keys.datakeys), wrapped under the KEK, kept in the database on
    PostgreSQL so that every host shares one ring (store/data_keys.py)."""

    __tablename__ = "data_key_ring"

    name: str = Field(primary_key=True, max_length=40)
    document: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: dt.datetime = Field(sa_column=_utc_column())

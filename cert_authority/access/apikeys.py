"""API keys: made here, shown once, stored only as SHA-256, checked on every API request.

Creating and revoking a key writes an audit row in the same transaction (store/audit.py, chained by
store/chain.py): who did it, the key's id, role and department. Never the key, its hash or its
prefix (the prefix is the key's first characters).

A key is `ecas_` + URL-safe base64 of 32 random bytes. 256 bits of randomness leave nothing to
brute-force, so a fast hash is right (a password hash would only slow every request). The first
characters (`prefix`) name the key in lists and when revoking it; they do not authenticate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.access.schemas import ApiKeyCreated, ApiKeyPublic
from cert_authority.actors import CLI_ACTOR, ROLE_NAMES, ROLES, Actor
from cert_authority.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from cert_authority.store.audit import audit_row
from cert_authority.store.models import ApiKeyRow, DepartmentRow
from cert_authority.timeutil import aware, utc_now

KEY_PREFIX = "ecas_"
KEY_FORMAT = re.compile(r"^ecas_[A-Za-z0-9_-]{43}$")
PREFIX_LENGTH = 12  # "ecas_" + 7 characters: enough to tell keys apart in a list
CACHE_SECONDS = 5.0
CACHE_SIZE = 10_000


def new_api_key() -> str:
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _public(row: ApiKeyRow, uscc: str | None) -> ApiKeyPublic:
    assert row.id is not None
    return ApiKeyPublic(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        department_uscc=uscc,
        created_at=aware(row.created_at),
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )


class ApiKeyService:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._cache: dict[str, tuple[Actor, float]] = {}

    def create(self, role: str, department_uscc: str | None, *, actor: Actor = CLI_ACTOR) -> ApiKeyCreated:
        """A new key for `role` (and the department, except for admins). The key is in the answer only.
        `actor`: who made it, for the audit row (keys are made at the command line only)."""
        if role not in ROLES:
            raise InvalidRequestError(f"未知角色 {role!r}，可选：{'、'.join(ROLES)}")
        with Session(self.engine) as session:
            department_id = self._department_for(session, role, department_uscc)
            for _ in range(3):
                key = new_api_key()
                row = ApiKeyRow(
                    prefix=key[:PREFIX_LENGTH],
                    key_hash=hash_key(key),
                    role=role,
                    department_id=department_id,
                    created_at=self.clock(),
                )
                session.add(row)
                try:
                    session.flush()  # the id, for the audit row
                except IntegrityError:  # a prefix already taken (rare): draw again
                    session.rollback()
                    continue
                detail = {"role": role, "department": department_uscc}
                session.add(audit_row(actor, "apikey_create", f"apikey:{row.id}", row.created_at, detail=detail))
                session.commit()
                return ApiKeyCreated(**_public(row, department_uscc).model_dump(), key=key)
        raise ConflictError("生成 API 密钥失败，请重试")

    def list(self) -> list[ApiKeyPublic]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(ApiKeyRow, DepartmentRow)
                .join(DepartmentRow, col(ApiKeyRow.department_id) == col(DepartmentRow.id), isouter=True)
                .order_by(col(ApiKeyRow.id))
            ).all()
            return [_public(key, department.uscc if department else None) for key, department in rows]

    def revoke(self, prefix: str, *, actor: Actor = CLI_ACTOR) -> ApiKeyPublic:
        with Session(self.engine) as session:
            found = session.exec(
                select(ApiKeyRow, DepartmentRow)
                .join(DepartmentRow, col(ApiKeyRow.department_id) == col(DepartmentRow.id), isouter=True)
                .where(col(ApiKeyRow.prefix) == prefix.strip())
            ).first()
            if found is None:
                raise NotFoundError(f"没有前缀为 {prefix!r} 的 API 密钥（用 ecas apikey list 查看）")
            row, department = found
            if row.revoked_at is not None:
                raise ConflictError(f"API 密钥 {row.prefix} 已于 {aware(row.revoked_at):%Y-%m-%d %H:%M} 吊销")
            row.revoked_at = self.clock()
            session.add(row)
            detail = {"role": row.role, "department": department.uscc if department else None}
            session.add(audit_row(actor, "apikey_revoke", f"apikey:{row.id}", row.revoked_at, detail=detail))
            session.commit()
            self._cache.pop(row.key_hash, None)
            session.refresh(row)
            return _public(row, department.uscc if department else None)

    def authenticate(self, key: str) -> Actor:
        """The actor behind `key`, or AuthenticationError (the key itself never appears in messages).

        A valid key is remembered for CACHE_SECONDS by this process (keyed by its hash): a busy counter
        then costs no database round trip per request. A revoked key (`ecas apikey revoke`, another
        process) is refused by every worker within CACHE_SECONDS."""
        if not KEY_FORMAT.fullmatch(key):
            raise AuthenticationError("API 密钥无效")
        cached = self.remembered(key)
        if cached is not None:
            return cached
        digest = hash_key(key)
        actor = self._lookup(digest)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[digest] = (actor, time.monotonic() + CACHE_SECONDS)
        return actor

    def remembered(self, key: str) -> Actor | None:
        """The actor behind `key` if this process checked it within CACHE_SECONDS (no database)."""
        cached = self._cache.get(hash_key(key))
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def _lookup(self, digest: str) -> Actor:
        with Session(self.engine) as session:
            found = session.exec(
                select(ApiKeyRow, DepartmentRow)
                .join(DepartmentRow, col(ApiKeyRow.department_id) == col(DepartmentRow.id), isouter=True)
                .where(col(ApiKeyRow.key_hash) == digest)
            ).first()
        if found is None:
            raise AuthenticationError("API 密钥无效")
        row, department = found
        if row.revoked_at is not None:
            raise AuthenticationError(f"API 密钥 {row.prefix} 已吊销")
        return Actor(label=f"apikey:{row.id}", role=row.role, department_uscc=department.uscc if department else None)

    @staticmethod
    def _department_for(session: Session, role: str, uscc: str | None) -> int | None:
        if role in ("admin", "exchange"):
            if uscc is not None:
                raise InvalidRequestError(f"{ROLE_NAMES[role]}密钥不属于任何部门：创建时不要给出部门")
            return None
        if uscc is None:
            raise InvalidRequestError(f"{ROLE_NAMES[role]}密钥须属于一个部门：请给出部门统一社会信用代码")
        department = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc) == uscc)).first()
        if department is None:
            raise NotFoundError(f"部门 {uscc} 尚未登记（先用 ecas departments add 登记）")
        if role in ("issuer", "user") and role not in department.roles.split(","):
            raise InvalidRequestError(
                f"部门 {department.name}（{uscc}）没有{ROLE_NAMES[role]}角色，不能为其创建{ROLE_NAMES[role]}密钥"
            )
        return department.id

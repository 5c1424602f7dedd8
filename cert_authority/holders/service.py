"""Holders (持证人: citizens and companies): logging in, their licences, and show tokens (亮证码).

Login goes through an `IdentityProvider`. The built-in one keeps accounts here, bound to the holder
code printed on the licences, with argon2id password hashes; a provincial unified login (OIDC) can
take its place without touching the rest. A login opens a session: a random token given to the
phone once, stored only as its SHA-256, valid for SESSION_HOURS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.access.passwords import PasswordGate
from cert_authority.actors import Actor
from cert_authority.errors import (
    AuthenticationError,
    ConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    NotFoundError,
)
from cert_authority.issuing.binding import RecordBinding
from cert_authority.issuing.records import effective_status, licence_summary
from cert_authority.issuing.schemas import LicenceSummary
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import RegistryService
from cert_authority.store.audit import audit_row
from cert_authority.store.models import HolderAccountRow, HolderSessionRow, LicenceRow
from cert_authority.timeutil import aware, local_date, utc_now
from keys.errors import InvalidCodeError
from keys.uscc import validate_uscc
from templates.identifier import mask_holder_code, validate_citizen_id
from verification.show_token import ShowToken, make_token

log = logging.getLogger("ecas.holders")

SESSION_HOURS = 8
SESSION_PREFIX = "hs_"
ANONYMOUS = Actor(label="anonymous", role="holder")
DEFAULT_SHOW_SECONDS = 60
MAX_SHOW_SECONDS = 300


@dataclass(frozen=True)
class Holder:
    id: int
    holder_code: str
    name: str

    def actor(self) -> Actor:
        return Actor(label=f"holder:{self.id}", role="holder")


class IdentityProvider(Protocol):
    def authenticate(self, holder_code: str, password: str, client: str = "unknown") -> Holder:
        """The holder, or AuthenticationError (401) saying nothing about which part was wrong;
        `client` (the caller's address) is what repeated failures are throttled by."""
        ...


class LocalAccounts:
    """Built-in holder accounts with argon2id password hashes."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self.passwords = PasswordGate(engine, clock)

    def create(self, holder_code: str, name: str, password: str) -> Holder:
        code = _checked_code(holder_code)
        if not name.strip():
            raise InvalidRequestError("姓名或名称不能为空")
        row = HolderAccountRow(
            holder_code=code, name=name.strip(), password_hash=self.passwords.hash(password), created_at=self.clock()
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise ConflictError(f"持证主体 {mask_holder_code(code)} 已有账号") from None
        assert row.id is not None
        log.info("holder account created for %s", mask_holder_code(code))
        return Holder(row.id, row.holder_code, row.name)

    def unlock(self, actor: Actor, holder_code: str) -> None:
        """Clear the failed-login count of this holder code (an administrator's decision; audited)."""
        self.passwords.unlock(actor, holder_code.strip().upper())

    def exists(self, holder_code: str) -> bool:
        with Session(self.engine) as session:
            return (
                session.exec(select(HolderAccountRow).where(col(HolderAccountRow.holder_code) == holder_code)).first()
                is not None
            )

    def holder(self, holder_code: str) -> Holder:
        """The account of `holder_code` (for the operator and the demo; holders log in)."""
        with Session(self.engine) as session:
            row = session.exec(select(HolderAccountRow).where(col(HolderAccountRow.holder_code) == holder_code)).first()
        if row is None:
            raise NotFoundError(f"持证主体 {mask_holder_code(holder_code)} 没有账号")
        assert row.id is not None
        return Holder(row.id, row.holder_code, row.name)

    def authenticate(self, holder_code: str, password: str, client: str = "unknown") -> Holder:
        code = holder_code.strip().upper()
        with Session(self.engine) as session:
            row = session.exec(select(HolderAccountRow).where(col(HolderAccountRow.holder_code) == code)).first()
        stored = row.password_hash if row is not None and not row.disabled else None
        # Checked (and audited) whether or not the account exists: the answer takes as long either way.
        matched = self.passwords.check(ANONYMOUS, code, stored, password, holder_code=code, client=client)
        if row is None or not matched:
            raise AuthenticationError("持证主体代码或密码错误")
        assert row.id is not None
        return Holder(row.id, row.holder_code, row.name)


class HolderService:
    def __init__(
        self,
        engine: Engine,
        identity: IdentityProvider,
        pki: PkiService,
        registry: RegistryService,
        binding: RecordBinding,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.pki = pki
        self.registry = registry
        self.binding = binding
        self.clock = clock

    def login(self, holder_code: str, password: str, client: str = "unknown") -> tuple[str, dt.datetime, Holder]:
        holder = self.identity.authenticate(holder_code, password, client)
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        expires = self.clock() + dt.timedelta(hours=SESSION_HOURS)
        with Session(self.engine) as session:
            session.exec(  # the holder's expired sessions go as a new one comes
                delete(HolderSessionRow)
                .where(col(HolderSessionRow.holder_id) == holder.id)
                .where(col(HolderSessionRow.expires_at) < self.clock())
            )
            session.add(HolderSessionRow(token_sha256=_sha256(token), holder_id=holder.id, expires_at=expires))
            session.commit()
        return token, expires, holder

    def holder_for_session(self, token: str) -> Holder:
        with Session(self.engine) as session:
            found = session.get(HolderSessionRow, _sha256(token))
            account = session.get(HolderAccountRow, found.holder_id) if found is not None else None
        if found is None or account is None or account.disabled or aware(found.expires_at) < self.clock():
            raise AuthenticationError("登录已失效，请重新登录")
        assert account.id is not None
        return Holder(account.id, account.holder_code, account.name)

    def logout(self, token: str) -> None:
        with Session(self.engine) as session:
            session.exec(delete(HolderSessionRow).where(col(HolderSessionRow.token_sha256) == _sha256(token)))
            session.commit()

    def licences(self, holder: Holder) -> list[LicenceSummary]:
        today = local_date(self.clock())
        with Session(self.engine) as session:
            rows = session.exec(
                select(LicenceRow)
                .where(col(LicenceRow.holder_code) == holder.holder_code)
                .order_by(col(LicenceRow.created_at).desc(), col(LicenceRow.id).desc())
            ).all()
        return [licence_summary(row, today) for row in rows]

    def show_token(
        self, holder: Holder, identifier: str, fields: Sequence[str] | None = None, seconds: int | None = None
    ) -> tuple[str, ShowToken]:
        """A signed token for one of the holder's valid licences, disclosing `fields` (all face
        fields by default; the holder's name is always shown) for `seconds` (60 by default, 5 min at most)."""
        now = self.clock()
        seconds = DEFAULT_SHOW_SECONDS if seconds is None else seconds
        if not 10 <= seconds <= MAX_SHOW_SECONDS:
            raise InvalidRequestError(f"亮证码有效期应在 10–{MAX_SHOW_SECONDS} 秒之间")
        with Session(self.engine) as session:
            row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
        if row is None or row.holder_code != holder.holder_code:
            raise NotFoundError(f"您名下没有证照 {identifier}")
        status = effective_status(row, local_date(now))
        if status != "issued":
            raise IllegalTransitionError(f"证照状态为 {status}，不能亮证")
        self.binding.ensure(row)
        face = _face(row)
        spec = self.registry.type_spec(row.type_code)
        chosen = list(face) if fields is None else list(dict.fromkeys(fields))
        unknown = [f for f in chosen if f not in face]
        if unknown:
            raise InvalidRequestError(f"证照没有这些字段：{'、'.join(unknown)}（可选：{'、'.join(face)}）")
        name_field = spec.holder.name_field
        if name_field in face and name_field not in chosen:
            chosen.insert(0, name_field)  # a counter must see whose licence it is
        disclosed = {key: face[key] for key in chosen}
        text, token = make_token(
            self.pki.service_signer(now), identifier, disclosed, now, dt.timedelta(seconds=seconds)
        )
        with Session(self.engine) as session:
            detail = {"fields": chosen, "expires_at": token.expires_at.isoformat()}
            session.add(
                audit_row(holder.actor(), "show_token", identifier, now, holder_code=holder.holder_code, detail=detail)
            )
            session.commit()
        return text, token


def _face(row: LicenceRow) -> dict[str, str]:
    values: dict[str, str] = json.loads(row.face_json)
    return values


def checked_holder_code(holder_code: str) -> str:
    """A citizen ID number (GB 11643) or a USCC (GB 32100), upper-cased; else InvalidRequestError
    (422) saying which check failed."""
    return _checked_code(holder_code)


def _checked_code(holder_code: str) -> str:
    code = holder_code.strip().upper()
    try:
        if len(code) == 18 and code[:17].isdigit():
            return validate_citizen_id(code)
        return validate_uscc(code)
    except InvalidCodeError as exc:
        raise InvalidRequestError(f"持证主体代码无效：{exc}") from None


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

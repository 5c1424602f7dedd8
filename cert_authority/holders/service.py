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
    SealedDataError,
)
from cert_authority.issuing.binding import RecordBinding
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.records import effective_status, licence_summary
from cert_authority.issuing.schemas import LicenceSummary
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import RegistryService
from cert_authority.store.audit import audit_row
from cert_authority.store.models import HolderAccountRow, HolderSessionRow, LicenceRow
from cert_authority.store.personal import PersonalData
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

    def __init__(self, engine: Engine, personal: PersonalData, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.personal = personal
        self.clock = clock
        self.passwords = PasswordGate(engine, clock)

    def create(self, holder_code: str, name: str, password: str) -> Holder:
        code = _checked_code(holder_code)
        if not name.strip():
            raise InvalidRequestError("姓名或名称不能为空")
        row = HolderAccountRow(
            holder_code_index=self.personal.index(code),
            password_hash=self.passwords.hash(password),
            created_at=self.clock(),
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            try:
                session.flush()  # the id, which the sealed values are bound to
            except IntegrityError:
                raise ConflictError(f"持证主体 {mask_holder_code(code)} 已有账号") from None
            row.personal_sealed = seal_account(self.personal, row, code, name.strip())
            session.commit()
        log.info("holder account created for %s", mask_holder_code(code))
        return open_account(self.personal, row)

    def unlock(self, actor: Actor, holder_code: str) -> None:
        """Clear the failed-login count of this holder code (an administrator's decision; audited)."""
        self.passwords.unlock(actor, self._login(holder_code.strip().upper()))

    def exists(self, holder_code: str) -> bool:
        return self._find(holder_code) is not None

    def holder(self, holder_code: str) -> Holder:
        """The account of `holder_code` (for the operator and the demo; holders log in)."""
        row = self._find(holder_code)
        if row is None:
            raise NotFoundError(f"持证主体 {mask_holder_code(holder_code)} 没有账号")
        return open_account(self.personal, row)

    def authenticate(self, holder_code: str, password: str, client: str = "unknown") -> Holder:
        code = holder_code.strip().upper()
        row = self._find(code)
        stored = row.password_hash if row is not None and not row.disabled else None
        # Checked (and audited) whether or not the account exists: the answer takes as long either way.
        matched = self.passwords.check(ANONYMOUS, self._login(code), stored, password, holder_code=code, client=client)
        if row is None or not matched:
            raise AuthenticationError("持证主体代码或密码错误")
        return open_account(self.personal, row)

    def _login(self, holder_code: str) -> str:
        """What failed log-ins are counted against: the code's blind index, not the code (the
        audit keeps a hash of it, which for an unkeyed hash of an ID number could be reversed)."""
        return "holder:" + self.personal.index(holder_code)

    def _find(self, holder_code: str) -> HolderAccountRow | None:
        index = self.personal.index(holder_code)
        with Session(self.engine) as session:
            found = select(HolderAccountRow).where(col(HolderAccountRow.holder_code_index) == index)
            return session.exec(found).first()


class HolderService:
    def __init__(
        self,
        engine: Engine,
        identity: IdentityProvider,
        pki: PkiService,
        registry: RegistryService,
        binding: RecordBinding,
        personal: PersonalData,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.personal = personal
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
        return open_account(self.personal, account)

    def logout(self, token: str) -> None:
        with Session(self.engine) as session:
            session.exec(delete(HolderSessionRow).where(col(HolderSessionRow.token_sha256) == _sha256(token)))
            session.commit()

    def licences(self, holder: Holder) -> list[LicenceSummary]:
        today = local_date(self.clock())
        with Session(self.engine) as session:
            rows = session.exec(
                select(LicenceRow)
                .where(col(LicenceRow.holder_code_index) == self.personal.index(holder.holder_code))
                .order_by(col(LicenceRow.created_at).desc(), col(LicenceRow.id).desc())
            ).all()
        return [licence_summary(open_licence(self.personal, row), today) for row in rows]

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
            stored = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).first()
        if stored is None or stored.holder_code_index != self.personal.index(holder.holder_code):
            raise NotFoundError(f"您名下没有证照 {identifier}")
        row = open_licence(self.personal, stored)
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


ACCOUNT_TABLE = "holder_account"


def seal_account(personal: PersonalData, row: HolderAccountRow, holder_code: str, name: str) -> str:
    """An account's code and name, sealed to its id (so they cannot be moved to another account)."""
    return personal.seal({"holder_code": holder_code, "name": name}, table=ACCOUNT_TABLE, row=str(row.id))


def open_account(personal: PersonalData, row: HolderAccountRow) -> Holder:
    """The holder of an account row; SealedDataError if its sealed values were edited or moved, or
    its index is not its code's."""
    assert row.id is not None
    values = personal.open(row.personal_sealed, table=ACCOUNT_TABLE, row=str(row.id))
    if personal.index(values["holder_code"]) != row.holder_code_index:
        raise SealedDataError(f"{ACCOUNT_TABLE} {row.id}：持证主体代码的索引与加密记录不符，记录可能被篡改")
    return Holder(row.id, values["holder_code"], values["name"])

"""Department staff accounts for the web console and the counter page. A staff member acts with
the account's role and department, exactly as an API key would (the same `Actor` and rules); a
login opens a session whose token lives in an HttpOnly cookie and is stored here only as SHA-256.

Every change to an account (made, disabled or enabled again, role or department changed, password
reset; its sign-in keys in access/signin.py) writes an audit row in the same transaction (chained,
store/chain.py): who did it and what changed, never a password or its hash. Disabling, a new role
or department and a password reset end the account's open sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.access.passwords import PasswordGate
from cert_authority.access.signin import SignatureRequiredError, SignInKeys
from cert_authority.actors import CLI_ACTOR, ROLE_NAMES, ROLES, Actor
from cert_authority.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from cert_authority.store.audit import audit_row
from cert_authority.store.models import DepartmentRow, StaffAccountRow, StaffSessionRow
from cert_authority.timeutil import aware, utc_now

SESSION_HOURS = 10  # a working day at the counter
SESSION_PREFIX = "ss_"
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{2,39}$")
ANONYMOUS = Actor(label="anonymous", role="staff")


@dataclass(frozen=True)
class StaffMember:
    id: int
    username: str
    name: str
    role: str
    department_uscc: str | None
    department_name: str | None

    def actor(self) -> Actor:
        return Actor(label=f"staff:{self.id}", role=self.role, department_uscc=self.department_uscc)


class StaffAccounts:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now, origin: str = "") -> None:
        self.engine = engine
        self.clock = clock
        self.passwords = PasswordGate(engine, clock)
        # `origin` (ECAS_BASE_URL) goes into every sign-in challenge: a signature is for this server.
        self.signin = SignInKeys(engine, origin, clock)

    def create(
        self,
        username: str,
        name: str,
        role: str,
        department_uscc: str | None,
        password: str,
        *,
        actor: Actor = CLI_ACTOR,
    ) -> StaffMember:
        """A new account; `actor`: who made it, for the audit row (accounts are made at the command line)."""
        if not USERNAME.fullmatch(username):
            raise InvalidRequestError("用户名为 3–40 位小写字母、数字或 _ . -，以字母开头")
        _check_role(role)
        if not name.strip():
            raise InvalidRequestError("姓名不能为空")
        password_hash = self.passwords.hash(password)
        with Session(self.engine, expire_on_commit=False) as session:
            department = _department(session, role, department_uscc)
            row = StaffAccountRow(
                username=username,
                name=name.strip(),
                role=role,
                department_id=department.id if department else None,
                password_hash=password_hash,
                created_at=self.clock(),
            )
            session.add(row)
            try:
                session.flush()  # the id, for the audit row
            except IntegrityError:
                raise ConflictError(f"用户名 {username} 已被使用") from None
            detail = {"username": username, "role": role, "department": department_uscc if department else None}
            session.add(audit_row(actor, "staff_create", f"staff:{row.id}", row.created_at, detail=detail))
            session.commit()
            return _member(row, department)

    def set_disabled(self, actor: Actor, username: str, disabled: bool) -> StaffMember:
        """Disable the account (its sessions end, it cannot sign in) or enable it again."""
        with Session(self.engine, expire_on_commit=False) as session:
            row, department = _account(session, username)
            if row.disabled == disabled:
                state = "已停用" if disabled else "未停用"
                raise ConflictError(f"账号 {row.username} {state}")
            row.disabled = disabled
            session.add(row)
            if disabled:
                _end_sessions(session, row)
            action = "staff_disable" if disabled else "staff_enable"
            session.add(audit_row(actor, action, f"staff:{row.id}", self.clock(), detail={"username": row.username}))
            session.commit()
            return _member(row, department)

    def change_role(self, actor: Actor, username: str, role: str, department_uscc: str | None) -> StaffMember:
        """A new role and department for the account (the rules of `create`); its sessions end."""
        _check_role(role)
        with Session(self.engine, expire_on_commit=False) as session:
            row, old_department = _account(session, username)
            department = _department(session, role, department_uscc)
            new_department_id = department.id if department else None
            if row.role == role and row.department_id == new_department_id:
                raise ConflictError(f"账号 {row.username} 的角色和部门没有变化")
            detail = {
                "username": row.username,
                "role": [row.role, role],
                "department": [old_department.uscc if old_department else None, department_uscc or None],
            }
            row.role, row.department_id = role, new_department_id
            session.add(row)
            _end_sessions(session, row)
            session.add(audit_row(actor, "staff_role_change", f"staff:{row.id}", self.clock(), detail=detail))
            session.commit()
            return _member(row, department)

    def reset_password(self, actor: Actor, username: str, password: str) -> StaffMember:
        """A new password for the account (an administrator's reset); its sessions end. The audit row
        says that the password was reset, nothing of the password or its hash."""
        password_hash = self.passwords.hash(password)
        with Session(self.engine, expire_on_commit=False) as session:
            row, department = _account(session, username)
            row.password_hash = password_hash
            session.add(row)
            _end_sessions(session, row)
            detail = {"username": row.username}
            session.add(audit_row(actor, "staff_password_reset", f"staff:{row.id}", self.clock(), detail=detail))
            session.commit()
            return _member(row, department)

    def exists(self, username: str) -> bool:
        with Session(self.engine) as session:
            return (
                session.exec(select(StaffAccountRow).where(col(StaffAccountRow.username) == username)).first()
                is not None
            )

    def unlock(self, actor: Actor, username: str) -> None:
        """Clear the failed-login count of this account (an administrator's decision; audited)."""
        self.passwords.unlock(actor, "staff:" + username.strip().lower())

    def login(self, username: str, password: str, client: str = "unknown") -> tuple[str, dt.datetime, StaffMember]:
        name = username.strip().lower()
        with Session(self.engine) as session:
            row = session.exec(select(StaffAccountRow).where(col(StaffAccountRow.username) == name)).first()
            department = session.get(DepartmentRow, row.department_id) if row and row.department_id else None
        stored = row.password_hash if row is not None and not row.disabled else None
        # Checked (and audited) whether or not the account exists: the answer takes as long either way.
        matched = self.passwords.check(ANONYMOUS, "staff:" + name, stored, password, client=client)
        if row is None or not matched:
            raise AuthenticationError("用户名或密码错误")
        assert row.id is not None
        if self.signin.required(row):
            if not self.signin.active_keys(row.id):
                raise AuthenticationError(
                    "该账号须用 SM2 密钥签名登录，但尚未登记密钥（ecas staff register-key 或 keygen）"
                )
            raise SignatureRequiredError(self.signin.challenge(row))
        return self._open_session(row, department)

    def finish_login(
        self, challenge_id: str, signature: str, client: str = "unknown"
    ) -> tuple[str, dt.datetime, StaffMember]:
        """The second step for an account that signs in with its SM2 key (access/signin.py)."""
        staff_id = self.signin.redeem(challenge_id, signature, client)
        with Session(self.engine) as session:
            row = session.get(StaffAccountRow, staff_id)
            department = session.get(DepartmentRow, row.department_id) if row and row.department_id else None
        if row is None or row.disabled:
            raise AuthenticationError("账号不可用")
        return self._open_session(row, department)

    def _open_session(
        self, row: StaffAccountRow, department: DepartmentRow | None
    ) -> tuple[str, dt.datetime, StaffMember]:
        assert row.id is not None
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + dt.timedelta(hours=SESSION_HOURS)
        with Session(self.engine) as session:
            session.exec(delete(StaffSessionRow).where(col(StaffSessionRow.expires_at) < now))
            session.add(StaffSessionRow(token_sha256=_sha256(token), staff_id=row.id, expires_at=expires))
            session.commit()
        return token, expires, _member(row, department)

    def member_for_session(self, token: str) -> StaffMember:
        with Session(self.engine) as session:
            found = session.get(StaffSessionRow, _sha256(token))
            row = session.get(StaffAccountRow, found.staff_id) if found is not None else None
            department = session.get(DepartmentRow, row.department_id) if row and row.department_id else None
        if found is None or row is None or row.disabled or aware(found.expires_at) < self.clock():
            raise AuthenticationError("登录已失效，请重新登录")
        return _member(row, department)

    def logout(self, token: str) -> None:
        with Session(self.engine) as session:
            session.exec(delete(StaffSessionRow).where(col(StaffSessionRow.token_sha256) == _sha256(token)))
            session.commit()


STAFF_ROLES = tuple(role for role in ROLES if role != "exchange")  # exchange: a key for the feed only


def _check_role(role: str) -> None:
    if role not in STAFF_ROLES:
        raise InvalidRequestError(f"工作人员的角色应为 {'、'.join(STAFF_ROLES)}，收到 {role!r}")


def _account(session: Session, username: str) -> tuple[StaffAccountRow, DepartmentRow | None]:
    name = username.strip().lower()
    row = session.exec(select(StaffAccountRow).where(col(StaffAccountRow.username) == name)).first()
    if row is None:
        raise NotFoundError(f"没有工作人员账号 {name}")
    department = session.get(DepartmentRow, row.department_id) if row.department_id else None
    return row, department


def _end_sessions(session: Session, row: StaffAccountRow) -> None:
    session.exec(delete(StaffSessionRow).where(col(StaffSessionRow.staff_id) == row.id))


def _department(session: Session, role: str, uscc: str | None) -> DepartmentRow | None:
    if role == "admin":
        if uscc:
            raise InvalidRequestError("管理员不属于任何部门：不要给出部门")
        return None
    if not uscc:
        raise InvalidRequestError(f"{ROLE_NAMES[role]}人员须属于一个部门：请给出部门统一社会信用代码")
    department = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc) == uscc)).first()
    if department is None:
        raise NotFoundError(f"部门 {uscc} 尚未登记（先用 ecas departments add 登记）")
    if role in ("issuer", "user") and role not in department.roles.split(","):  # as for API keys
        raise InvalidRequestError(
            f"部门 {department.name}（{uscc}）没有{ROLE_NAMES[role]}角色，不能为其设{ROLE_NAMES[role]}人员"
        )
    return department


def _member(row: StaffAccountRow, department: DepartmentRow | None) -> StaffMember:
    assert row.id is not None
    return StaffMember(
        row.id,
        row.username,
        row.name,
        row.role,
        department.uscc if department else None,
        department.name if department else None,
    )


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

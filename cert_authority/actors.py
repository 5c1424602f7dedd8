"""Who is acting (an API key's role and department, or the operator at the CLI) and what each
role may do in the registry. The rules live here, beside the service, so HTTP and CLI share them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cert_authority.errors import InvalidRequestError, PermissionDeniedError

ROLES = ("admin", "issuer", "user", "auditor", "exchange")
# exchange: reads the change feed (GET /api/v1/feed), for the provincial library; nothing else.
ROLE_NAMES = {"admin": "管理员", "issuer": "颁证部门", "user": "用证部门", "auditor": "审计", "exchange": "数据交换"}


@dataclass(frozen=True)
class Actor:
    label: str  # recorded as created_by: "apikey:<id>" or "cli"
    role: str
    department_uscc: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def describe(self) -> str:
        role = ROLE_NAMES.get(self.role, self.role)
        return f"{role}（{self.department_uscc}）" if self.department_uscc else role


# The operator at the command line runs the authority: full rights.
CLI_ACTOR = Actor(label="cli", role="admin")


def ensure_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        allowed = "、".join(ROLE_NAMES[r] for r in roles)
        raise PermissionDeniedError(f"权限不足：此操作仅限{allowed}，当前为{actor.describe()}")


def ensure_may_register(actor: Actor, issuers: Collection[str]) -> None:
    """Admins register any type; an issuer only a type its own department alone will issue: naming
    other departments as issuers is the administrator's decision."""
    if actor.is_admin:
        return
    ensure_role(actor, "admin", "issuer")
    if actor.department_uscc not in issuers:
        raise PermissionDeniedError(
            f"权限不足：本部门（{actor.department_uscc}）不在该证照类型的颁发部门（issuers）之列，不能登记"
        )
    others = sorted(set(issuers) - {actor.department_uscc})
    if others:
        raise PermissionDeniedError(
            f"权限不足：只有管理员能把其他部门列为颁发部门（issuers 中的 {'、'.join(others)}）"
        )


def ensure_may_add_template(actor: Actor, code: str, issuers: Collection[str]) -> None:
    """Admins, and issuers whose department may issue the type, add template versions."""
    if actor.is_admin:
        return
    ensure_role(actor, "admin", "issuer")
    if actor.department_uscc not in issuers:
        raise PermissionDeniedError(
            f"权限不足：本部门（{actor.department_uscc}）不是证照类型 {code} 的颁发部门，不能新增模板版本"
        )


# --- licences and seals ------------------------------------------------------------------------
def issuing_department(actor: Actor, requested: str | None) -> str:
    """The department a write acts for: an issuer's own, or the one an admin names."""
    if actor.is_admin:
        if not requested:
            raise InvalidRequestError("管理员代为办理须指明颁证部门（issuer_uscc / --issuer）")
        return requested
    ensure_role(actor, "admin", "issuer")
    assert actor.department_uscc is not None
    if requested and requested != actor.department_uscc:
        raise PermissionDeniedError(
            f"权限不足：颁证部门只能以本部门（{actor.department_uscc}）名义办理，不能代 {requested} 办理"
        )
    return actor.department_uscc


def ensure_may_write_for(actor: Actor, department_uscc: str, what: str) -> None:
    """Admins, and issuers of that department, change its licences and seals."""
    if actor.is_admin:
        return
    ensure_role(actor, "admin", "issuer")
    if actor.department_uscc != department_uscc:
        raise PermissionDeniedError(
            f"权限不足：{what}属于部门 {department_uscc}，本部门（{actor.department_uscc}）不能办理"
        )


def ensure_may_read_for(actor: Actor, department_uscc: str, what: str) -> None:
    """Reads: admins and auditors see everything, an issuer its own department's.

    Users (用证部门) get nothing here: they read a licence through `sharing`, with a use cause and
    the holder's use code or a duty rule."""
    if actor.role in ("admin", "auditor"):
        return
    ensure_role(actor, "admin", "auditor", "issuer")
    if actor.department_uscc != department_uscc:
        raise PermissionDeniedError(
            f"权限不足：{what}属于部门 {department_uscc}，本部门（{actor.department_uscc}）无权查看"
        )


def readable_department(actor: Actor, requested: str | None) -> str | None:
    """For lists: None (everything) for admins and auditors unless they filter; an issuer's own."""
    if actor.role in ("admin", "auditor"):
        return requested
    ensure_role(actor, "admin", "auditor", "issuer")
    if requested and requested != actor.department_uscc:
        raise PermissionDeniedError(f"权限不足：本部门（{actor.department_uscc}）不能查看部门 {requested} 的数据")
    return actor.department_uscc

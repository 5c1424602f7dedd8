"""A show token (亮证码) scanned at the counter as the holder's consent to reuse the licence it shows
in a case: the holder, in front of the clerk, shows that licence from the wallet.

The token is checked as any show token is (`verification.show_token`: this authority's signature,
not expired, not altered) and must show the licence being reused, held by the case's applicant. It
is accepted once, wherever it is checked first: the same show_token_use row a counter's plain check
writes (its primary key, the nonce, settles two counters at once), so a token already checked, or
used in another case, is a replay. If the use then fails, the row is deleted again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from cert_authority.actors import Actor
from cert_authority.errors import PermissionDeniedError
from cert_authority.pki.service import PkiService
from cert_authority.store.models import ShowTokenUseRow
from verification.report import Status
from verification.show_token import ShowToken, read_token

BASIS = "show_token"


def read_show_token(pki: PkiService, text: str, now: dt.datetime) -> ShowToken:
    """The token, if this authority signed it and it has not expired; else 403 saying why."""
    service = pki.service_signer(now).certificate_chain[0]
    token, check = read_token(text, [service], now)
    if token is None or check.status is not Status.VALID:
        raise PermissionDeniedError(f"亮证码不能作为持证人同意：{check.message}")
    return token


def shown_licence(token: ShowToken, identifier: str | None) -> str:
    """The licence the token shows; if the counter named one too, it must be that one."""
    if identifier and identifier.strip() and identifier.strip() != token.identifier:
        raise PermissionDeniedError("亮证码出示的不是这份证照：持证人同意只对其出示的证照有效")
    return token.identifier


def accept_show_token(engine: Engine, actor: Actor, token: ShowToken) -> tuple[str, Callable[[], None]]:
    """Record the token as accepted by `actor`'s department (403 if it was accepted before), and
    the way to take that back if the use fails."""
    row = ShowTokenUseRow(
        nonce=token.nonce,
        verifier=actor.department_uscc or actor.label,
        identifier=token.identifier,
        expires_at=token.expires_at,
    )
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            raise PermissionDeniedError(
                "此亮证码已被核验或使用过（每个亮证码只能用一次），请持证人刷新后重新出示"
            ) from None

    def give_back() -> None:
        with Session(engine) as session:
            session.exec(delete(ShowTokenUseRow).where(col(ShowTokenUseRow.nonce) == token.nonce))
            session.commit()

    return BASIS, give_back

"""Cryptographic sign-in for staff: after the password, the account's registered SM2 key signs a
challenge from the server (two factors, one of them cryptographic: GB/T 39786-2021 level 3,
identity authentication). Administrators must; other staff must once they have registered a key.

The protocol, what a USB key (UKey) or the demo's software key speaks:

1. The password is right: the server makes a challenge, 32 random bytes, kept (as SHA-256) for
   `CHALLENGE_SECONDS` and bound to the account, and sends the message to sign, UTF-8 text:

       ECAS-STAFF-SIGNIN/1
       origin=<ECAS_BASE_URL>
       username=<account>
       challenge=<64 hex digits>
       expires=<ISO 8601 UTC>

2. The key signs the message: SM2 with SM3 and the signer ID 1234567812345678 (GB/T 32918,
   GM/T 0009: e = SM3(Z ‖ message)); a UKey's SKF_ECCSignData signs that e. The answer is the
   signature in base64, DER `SEQUENCE {r, s}` or the 64 bytes r ‖ s.
3. The server spends the challenge (whatever the answer: one try) and checks the signature with
   each key registered for that account and not revoked: a key of another account, a signature
   of another message (another origin, account or challenge), an old challenge or a second
   answer are refused alike. Every failure is audited.

`ecas staff keygen` makes a software key (encrypted PKCS#8, SM4) and registers it;
`ecas staff register-key` registers a UKey's exported public key; `ecas staff sign-challenge`
signs a message with a key file (what a UKey's middleware does).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.actors import Actor
from cert_authority.errors import AuthenticationError, ConflictError, InvalidRequestError, NotFoundError
from cert_authority.store.audit import audit_row
from cert_authority.store.models import StaffAccountRow, StaffChallengeRow, StaffSignKeyRow
from cert_authority.timeutil import aware, utc_now
from keys.errors import InvalidKeyError
from keys.sm2 import SM2PublicKey, raw_to_der, sm3

__all__ = ["CHALLENGE_SECONDS", "PROTOCOL", "Challenge", "SignInKeys", "SignatureRequiredError"]

PROTOCOL = "ECAS-STAFF-SIGNIN/1"
CHALLENGE_SECONDS = 120


@dataclass(frozen=True)
class Challenge:
    id: str  # 64 hex digits
    message: str  # the exact text to sign
    expires_at: dt.datetime


class SignatureRequiredError(AuthenticationError):
    """The password was right; the account signs in with its SM2 key too: sign `challenge`."""

    def __init__(self, challenge: Challenge) -> None:
        super().__init__("请用已登记的 SM2 密钥签名登录挑战")
        self.challenge = challenge


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def decode_signature(text: str) -> bytes:
    """A base64 (standard or URL-safe) DER or r‖s signature as DER; InvalidRequestError otherwise."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("签名应为 base64 编码") from None
    if len(data) == 64:
        return raw_to_der(data)
    if not 8 <= len(data) <= 72:
        raise InvalidRequestError("签名长度不对（应为 DER 或 64 字节 r‖s）")
    return data


class SignInKeys:
    def __init__(self, engine: Engine, origin: str, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.origin = origin
        self.clock = clock

    # --- keys ----------------------------------------------------------------------------------
    def register(self, actor: Actor, username: str, public_key: bytes, label: str) -> str:
        """Register an SM2 public key (PEM or DER SubjectPublicKeyInfo) for the account; its SM3
        fingerprint (hex). A key serves one account only."""
        try:
            key = SM2PublicKey.from_der(public_key)
        except InvalidKeyError as exc:
            raise InvalidRequestError(f"不是 SM2 公钥：{exc}") from None
        der = key.to_der()
        fingerprint = sm3(der).hex()
        now = self.clock()
        with Session(self.engine) as session:
            account = self._account(session, username)
            assert account.id is not None
            session.add(
                StaffSignKeyRow(
                    staff_id=account.id,
                    public_key_der=der,
                    fingerprint=fingerprint,
                    label=label.strip()[:100] or "SM2",
                    registered_at=now,
                    registered_by=actor.label,
                )
            )
            detail = {"username": account.username, "fingerprint": fingerprint, "label": label}
            session.add(audit_row(actor, "staff_key_register", f"staff:{account.id}", now, detail=detail))
            try:
                session.commit()
            except IntegrityError:
                raise ConflictError("这个公钥已登记（一个密钥只对应一个账号）") from None
        return fingerprint

    def revoke(self, actor: Actor, username: str, fingerprint: str) -> None:
        now = self.clock()
        with Session(self.engine) as session:
            account = self._account(session, username)
            row = session.exec(
                select(StaffSignKeyRow)
                .where(col(StaffSignKeyRow.staff_id) == account.id)
                .where(col(StaffSignKeyRow.fingerprint) == fingerprint.lower())
                .where(col(StaffSignKeyRow.revoked_at).is_(None))
            ).first()
            if row is None:
                raise NotFoundError(f"账号 {account.username} 没有有效的公钥 {fingerprint}")
            row.revoked_at = now
            session.add(row)
            detail = {"username": account.username, "fingerprint": row.fingerprint}
            session.add(audit_row(actor, "staff_key_revoke", f"staff:{account.id}", now, detail=detail))
            session.commit()

    def active_keys(self, staff_id: int) -> list[SM2PublicKey]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(StaffSignKeyRow)
                .where(col(StaffSignKeyRow.staff_id) == staff_id)
                .where(col(StaffSignKeyRow.revoked_at).is_(None))
            ).all()
        return [SM2PublicKey.from_der(row.public_key_der) for row in rows]

    def required(self, account: StaffAccountRow) -> bool:
        """Administrators always; others once they have a key."""
        assert account.id is not None
        return account.role == "admin" or bool(self.active_keys(account.id))

    # --- challenges ----------------------------------------------------------------------------
    def challenge(self, account: StaffAccountRow) -> Challenge:
        """A new challenge for the account (its password was right)."""
        assert account.id is not None
        now = self.clock()
        challenge_id = secrets.token_hex(32)
        expires = (now + dt.timedelta(seconds=CHALLENGE_SECONDS)).astimezone(dt.UTC).replace(microsecond=0)
        message = (
            f"{PROTOCOL}\norigin={self.origin}\nusername={account.username}\n"
            f"challenge={challenge_id}\nexpires={expires.isoformat()}\n"
        )
        with Session(self.engine) as session:
            session.exec(delete(StaffChallengeRow).where(col(StaffChallengeRow.expires_at) < now))
            session.add(
                StaffChallengeRow(
                    challenge_sha256=_sha256(challenge_id), staff_id=account.id, message=message, expires_at=expires
                )
            )
            session.commit()
        return Challenge(challenge_id, message, expires)

    def redeem(self, challenge_id: str, signature: str, client: str = "unknown") -> int:
        """The staff id whose registered key signed the challenge's message; the challenge is spent
        by this call whatever the answer. AuthenticationError (audited) otherwise."""
        now = self.clock()
        with Session(self.engine) as session:
            row = session.get(StaffChallengeRow, _sha256(challenge_id.strip().lower()))
            if row is not None:
                # Spent before it is judged: of two answers racing, one finds it.
                spent = session.exec(
                    delete(StaffChallengeRow).where(col(StaffChallengeRow.challenge_sha256) == row.challenge_sha256)
                ).rowcount
                session.commit()
                if spent != 1:
                    row = None
        reason = None
        if row is None:
            reason = "unknown_or_spent_challenge"
        elif aware(row.expires_at) < now:
            reason = "expired_challenge"
        else:
            try:
                der = decode_signature(signature)
            except InvalidRequestError:
                der = b""
            message = row.message.encode()
            if not der or not any(key.verify(der, message) for key in self.active_keys(row.staff_id)):
                reason = "bad_signature"
        if reason is not None:
            self._audit_failure(row.staff_id if row else None, reason, client, now)
            raise AuthenticationError("SM2 签名登录失败：挑战无效、已过期或已使用，或签名不是该账号登记的密钥所签")
        assert row is not None
        return row.staff_id

    # --- helpers -------------------------------------------------------------------------------
    def _account(self, session: Session, username: str) -> StaffAccountRow:
        name = username.strip().lower()
        account = session.exec(select(StaffAccountRow).where(col(StaffAccountRow.username) == name)).first()
        if account is None or account.id is None:
            raise NotFoundError(f"没有工作人员账号 {name}")
        return account

    def _audit_failure(self, staff_id: int | None, reason: str, client: str, now: dt.datetime) -> None:
        actor = Actor(label="anonymous", role="staff")
        target = f"staff:{staff_id}" if staff_id is not None else "staff:?"
        with Session(self.engine) as session:
            session.add(audit_row(actor, "staff_sign_failed", target, now, detail={"reason": reason, "client": client}))
            session.commit()

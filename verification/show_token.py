"""Show tokens (亮证码): what a holder's phone shows as a QR code, short-lived and SM2-signed by the
authority's service key, so a counter can check it online or offline.

    ECT1.<payload>.<signature>        both parts base64url without padding

The payload is compact JSON, deflated (about 30% smaller with Chinese text): `id` the licence
identifier, `f` the disclosed face fields, `iat` and `exp` (Unix seconds), `n` a random nonce, `k`
the serial of the service certificate that signed it. The signature is DER SM2 (default ID) over
the ASCII bytes "ECT1.<payload>", like a JWS signing input. The token is plain ASCII, so a scanner
gun can type it. With every field disclosed the demo licences give 490–890 characters, QR versions
17–24 at level M (a phone screen shows them; zbar reads them); a subset of fields is much shorter.

`read_token` checks the form, the signature and the time window; the licence's live status and
replays (a token accepted once per verifier) need the registry and are the online service's part.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import zlib
from dataclasses import dataclass
from typing import Any

from keys.signer import Signer
from keys.x509 import Certificate
from verification.report import Check, shown_time

__all__ = ["MAX_TOKEN_CHARS", "PREFIX", "ShowToken", "make_token", "read_token"]

PREFIX = "ECT1"
MAX_TOKEN_CHARS = 2000
MAX_PAYLOAD_BYTES = 16 * 1024  # inflated: a token is never near this
CLOCK_SKEW = dt.timedelta(seconds=30)  # phones' clocks drift; a token "from the future" by less is fine


@dataclass(frozen=True)
class ShowToken:
    identifier: str
    fields: dict[str, str]
    issued_at: dt.datetime
    expires_at: dt.datetime
    nonce: str
    key_serial: str  # hex serial of the service certificate


def make_token(
    signer: Signer, identifier: str, fields: dict[str, str], now: dt.datetime, lifetime: dt.timedelta
) -> tuple[str, ShowToken]:
    """A signed token disclosing `fields` of licence `identifier`, valid for `lifetime` from `now`."""
    issued = int(now.timestamp())
    token = ShowToken(
        identifier=identifier,
        fields=dict(fields),
        issued_at=dt.datetime.fromtimestamp(issued, dt.timezone.utc),
        expires_at=dt.datetime.fromtimestamp(issued + int(lifetime.total_seconds()), dt.timezone.utc),
        nonce=_b64(os.urandom(12)),
        key_serial=signer.certificate_chain[0].serial_hex,
    )
    payload = {
        "id": token.identifier,
        "f": token.fields,
        "iat": issued,
        "exp": int(token.expires_at.timestamp()),
        "n": token.nonce,
        "k": token.key_serial,
    }
    packed = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    signing_input = f"{PREFIX}.{_b64(_deflate(packed))}"
    return f"{signing_input}.{_b64(signer.sign(signing_input.encode()))}", token


def read_token(text: str, service_certificates: list[Certificate], now: dt.datetime) -> tuple[ShowToken | None, Check]:
    """The token and a check: VALID, or INVALID with reason malformed_token, unknown_key
    (another authority, or a key we do not know), bad_signature, expired or not_yet_valid."""
    text = text.strip()
    if len(text) > MAX_TOKEN_CHARS or text.count(".") != 2 or not text.startswith(PREFIX + "."):
        return None, Check.invalid("token", "malformed_token", "不是亮证码（格式不符）")
    _, payload_part, signature_part = text.split(".")
    try:
        payload = json.loads(_inflate(_unb64(payload_part)))
        signature = _unb64(signature_part)
        token = _token(payload)
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, OSError, zlib.error):
        return None, Check.invalid("token", "malformed_token", "亮证码内容无法解析")
    key = next((c for c in service_certificates if c.serial_hex.lower() == token.key_serial.lower()), None)
    if key is None:
        return token, Check.invalid("token", "unknown_key", "亮证码不是本机构签发的（签名密钥未知）")
    if not key.public_key.verify(signature, f"{PREFIX}.{payload_part}".encode()):
        return token, Check.invalid("token", "bad_signature", "亮证码签名无效：内容被改动或伪造")
    if now > token.expires_at:
        return token, Check.invalid("token", "expired", f"亮证码已于 {shown_time(token.expires_at)} 过期，请持证人刷新")
    if token.issued_at > now + CLOCK_SKEW:
        return token, Check.invalid("token", "not_yet_valid", "亮证码的签发时间晚于当前时间")
    return token, Check.ok("token", f"亮证码签名有效，{shown_time(token.expires_at)} 前有效")


def _token(payload: Any) -> ShowToken:
    if not isinstance(payload, dict) or not isinstance(payload.get("f"), dict):
        raise ValueError("payload")
    fields = payload["f"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise ValueError("fields")
    issued, expires = int(payload["iat"]), int(payload["exp"])
    return ShowToken(
        identifier=str(payload["id"]),
        fields=fields,
        issued_at=dt.datetime.fromtimestamp(issued, dt.timezone.utc),
        expires_at=dt.datetime.fromtimestamp(expires, dt.timezone.utc),
        nonce=str(payload["n"]),
        key_serial=str(payload["k"]),
    )


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no zlib header to spend
    return packer.compress(data) + packer.flush()


def _inflate(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15)
    out = unpacker.decompress(data, MAX_PAYLOAD_BYTES)
    if unpacker.unconsumed_tail or not unpacker.eof:  # too big once inflated, or truncated
        raise ValueError("payload")
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

"""PEM (RFC 7468) or DER in, DER out: the one reader of armoured keys, certificates, requests and
CRLs in `keys`."""

from __future__ import annotations

from asn1crypto import pem

from keys.errors import KeysError


def der_from(data: bytes, labels: tuple[str, ...], error: type[KeysError], what: str | None = None) -> bytes:
    """`data` as it is when it is DER, else the DER inside its PEM block, which must carry one of
    `labels`; anything else raises `error` (naming `what`, e.g. "certificate", when given)."""
    if not pem.detect(data):
        return data
    try:
        label, _headers, der = pem.unarmor(data)
    except ValueError as exc:
        raise error(f"malformed PEM{' ' + what if what else ''}: {exc}") from exc
    if label not in labels:
        raise error(f"expected PEM {' or '.join(labels)}, got {label}")
    return bytes(der)

"""The issuance transparency log's formats: the leaves (a licence event; an audit-chain anchor) and
the signed tree head.

A licence leaf, format 1 or 2 (integers big-endian; strings ASCII, each after a one-byte length):

    u8   format           1 or 2
    str  identifier       the licence identifier (GB/T 36904), this version's
    u32  version          the licence version
    str  event            issue | change | revoke | cancel
    u64  time             when the event happened, milliseconds since 1970-01-01T00:00:00Z
    u8   file count       then per sealed file: str name (pdf, ofd), 32 bytes SM3 of the file
    32   record           format 1: SM3 of the licence record's canonical form (the digest sealed
                          in its OFD); format 2: the record commitment,
                          SM3("ecas/log/record-commitment/2" 0x00 || salt || record SM3), salt 32
                          bytes the authority derives per licence and discloses with its proof

Format 2 exists because the record includes the holder's code: with a format-1 leaf public and the
other fields of the record known, a low-entropy ID number can be found by trying them all against
the record SM3. The salt makes that impossible without asking the authority.

A chain-anchor leaf, format 3: the heads of the audit trail's HMAC-SM3 chains at one time
(`cert_authority.store.chain.AnchorRun`), so that rows cut off the end of a chain, or an edited
anchor, are found against the log:

    u8   format           3
    u64  time             the anchor run's time, milliseconds since the epoch
    u32  heads            how many chain heads the run recorded
    32   digest           SM3 of the run's heads (AnchorRun.digest)

A signed tree head is a C2SP checkpoint (https://c2sp.org/tlog-checkpoint) with one extension
line, the time it was made, signed with SM2 (SM3, the default ID 1234567812345678) by the
authority's service key:

    <origin>\\n<tree size>\\n<base64 root hash>\\ntime <milliseconds since the epoch>\\n

The signature covers exactly those bytes; as a C2SP signed note the line after the blank line is
`— <origin> base64(key id || DER signature)`, key id = SHA-256(origin || 0x0A || 0xFF || SPKI)[:4]
(no signature type is registered for SM2; 0xFF marks "other").
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keys.sm2 import sm3
from keys.x509 import Certificate

__all__ = [
    "COMMITTED_FORMAT",
    "EVENTS",
    "LEAF_FORMAT",
    "AnchorLeaf",
    "LeafFormatError",
    "LogLeaf",
    "SignedTreeHead",
    "decode_hashes",
    "decode_leaf",
    "record_commitment",
]

LEAF_FORMAT = 1  # a licence leaf binding the record SM3 itself (leaves written before format 2)
COMMITTED_FORMAT = 2  # a licence leaf binding a salted commitment to the record SM3
ANCHOR_FORMAT = 3
_COMMITMENT_LABEL = b"ecas/log/record-commitment/2\x00"
EVENTS = ("issue", "change", "revoke", "cancel")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_SIGNATURE_TYPE_OTHER = b"\xff"


class LeafFormatError(ValueError):
    """Bytes that are not a leaf of format 1, or a head that does not parse."""


def _milliseconds(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)


def _from_milliseconds(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=value)


def _short(text: str) -> bytes:
    data = text.encode("ascii")
    if not 0 < len(data) < 256:
        raise LeafFormatError(f"{text!r}: 1 to 255 ASCII characters")
    return bytes([len(data)]) + data


def record_commitment(salt: bytes, record_sm3: bytes) -> bytes:
    """What a format-2 leaf binds in place of the record SM3."""
    if len(salt) != 32 or len(record_sm3) != 32:
        raise LeafFormatError("the salt and the record SM3 are 32 bytes each")
    return sm3(_COMMITMENT_LABEL + salt + record_sm3)


@dataclass(frozen=True)
class LogLeaf:
    identifier: str
    version: int
    event: str
    time: dt.datetime
    files: tuple[tuple[str, bytes], ...]  # (name, SM3), in the order written
    record_sm3: bytes  # format 1: the record SM3; format 2: record_commitment(salt, record SM3)
    format: int = COMMITTED_FORMAT

    def encode(self) -> bytes:
        if self.format not in (LEAF_FORMAT, COMMITTED_FORMAT):
            raise LeafFormatError(f"unknown licence leaf format {self.format}")
        if self.event not in EVENTS:
            raise LeafFormatError(f"unknown event {self.event!r}")
        if len(self.record_sm3) != 32 or any(len(digest) != 32 for _, digest in self.files):
            raise LeafFormatError("SM3 digests are 32 bytes")
        parts = [
            bytes([self.format]),
            _short(self.identifier),
            self.version.to_bytes(4, "big"),
            _short(self.event),
            _milliseconds(self.time).to_bytes(8, "big"),
            bytes([len(self.files)]),
        ]
        parts += [_short(name) + digest for name, digest in self.files]
        parts.append(self.record_sm3)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> LogLeaf:
        reader = _Reader(data)
        format_ = reader.take(1)[0]
        if format_ not in (LEAF_FORMAT, COMMITTED_FORMAT):
            raise LeafFormatError("not a licence leaf (format 1 or 2)")
        identifier = reader.short()
        version = int.from_bytes(reader.take(4), "big")
        event = reader.short()
        time = _from_milliseconds(int.from_bytes(reader.take(8), "big"))
        files = tuple((reader.short(), reader.take(32)) for _ in range(reader.take(1)[0]))
        record = reader.take(32)
        if not reader.done():
            raise LeafFormatError("bytes after the record SM3")
        if event not in EVENTS:
            raise LeafFormatError(f"unknown event {event!r}")
        return cls(identifier, version, event, time, files, record, format_)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "identifier": self.identifier,
            "version": self.version,
            "event": self.event,
            "time": self.time.isoformat(),
            "files": {name: digest.hex() for name, digest in self.files},
            ("record_sm3" if self.format == LEAF_FORMAT else "record_commitment"): self.record_sm3.hex(),
        }


@dataclass(frozen=True)
class AnchorLeaf:
    """The heads of the audit trail's chains at one time (format 3)."""

    time: dt.datetime
    heads: int
    digest: bytes

    def encode(self) -> bytes:
        if len(self.digest) != 32 or not 0 < self.heads < 2**32:
            raise LeafFormatError("an anchor leaf has 1 or more heads and a 32-byte SM3")
        return (
            bytes([ANCHOR_FORMAT])
            + _milliseconds(self.time).to_bytes(8, "big")
            + self.heads.to_bytes(4, "big")
            + self.digest
        )

    @classmethod
    def decode(cls, data: bytes) -> AnchorLeaf:
        reader = _Reader(data)
        if reader.take(1) != bytes([ANCHOR_FORMAT]):
            raise LeafFormatError("not an anchor leaf (format 3)")
        time = _from_milliseconds(int.from_bytes(reader.take(8), "big"))
        heads = int.from_bytes(reader.take(4), "big")
        digest = reader.take(32)
        if not reader.done():
            raise LeafFormatError("bytes after the anchor digest")
        return cls(time, heads, digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ANCHOR_FORMAT,
            "time": self.time.isoformat(),
            "heads": self.heads,
            "digest": self.digest.hex(),
        }


def decode_leaf(data: bytes) -> LogLeaf | AnchorLeaf:
    """Any leaf of the log, by its format byte."""
    if data[:1] == bytes([ANCHOR_FORMAT]):
        return AnchorLeaf.decode(data)
    return LogLeaf.decode(data)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise LeafFormatError("leaf ends early")
        part = self.data[self.at : self.at + count]
        self.at += count
        return part

    def short(self) -> str:
        try:
            return self.take(self.take(1)[0]).decode("ascii")
        except UnicodeDecodeError as exc:
            raise LeafFormatError("a string is not ASCII") from exc

    def done(self) -> bool:
        return self.at == len(self.data)


@dataclass(frozen=True)
class SignedTreeHead:
    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: int  # milliseconds since the epoch
    signature: bytes  # DER SM2 over `body`

    @property
    def body(self) -> bytes:
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.tree_size}\n{root}\ntime {self.timestamp}\n".encode()

    @property
    def time(self) -> dt.datetime:
        return _from_milliseconds(self.timestamp)

    @property
    def label(self) -> str:
        """How a report names the head: size and the root's first hex digits."""
        return f"{self.tree_size}/{self.root_hash.hex()[:16]}"

    def verify(self, certificate: Certificate) -> bool:
        return certificate.public_key.verify(self.signature, self.body)

    def note(self, certificate: Certificate) -> bytes:
        """The head as a C2SP signed note (the `checkpoint` file of the tiles)."""
        key_id = hashlib.sha256(
            self.origin.encode() + b"\n" + _SIGNATURE_TYPE_OTHER + certificate.public_key.to_der()
        ).digest()[:4]
        line = f"\u2014 {self.origin} {base64.b64encode(key_id + self.signature).decode()}\n"
        return self.body + b"\n" + line.encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "timestamp": self.timestamp,
            "time": self.time.isoformat(),
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedTreeHead:
        try:
            head = cls(
                origin=str(data["origin"]),
                tree_size=int(data["tree_size"]),
                root_hash=base64.b64decode(data["root_hash"], validate=True),
                timestamp=int(data["timestamp"]),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise LeafFormatError(f"not a signed tree head: {exc}") from exc
        if head.tree_size < 0 or len(head.root_hash) != 32 or "\n" in head.origin:
            raise LeafFormatError("not a signed tree head: size, root hash or origin out of range")
        return head


def decode_hashes(values: Sequence[str]) -> list[bytes]:
    return [base64.b64decode(value, validate=True) for value in values]

"""Hostile files sent to the verifier: each is refused with a reason, quickly, in bounded memory,
and never raises out of the verifier (what the counter page and POST /api/v1/verify rely on)."""

from __future__ import annotations

import io
import re
import time
import tracemalloc
import zipfile

import pytest

from cert_authority.actors import CLI_ACTOR
from cert_authority.checking.licences import MAX_UPLOAD_BYTES
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example
from verification.report import Status

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'.encode()
               for i in range(9))
    + b"]><ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'>&lol8;</ofd:OFD>"
)


def _with_part(ofd: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ofd)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == name else source.read(info))
    return out.getvalue()


def _nested_der(depth: int) -> bytes:
    """SEQUENCE { SEQUENCE { … } } `depth` deep, with long-form lengths."""
    inner = b"\x05\x00"
    for _ in range(depth):
        length = len(inner)
        size = length.to_bytes((length.bit_length() + 7) // 8 or 1, "big")
        inner = b"\x30" + bytes([0x80 | len(size)]) + size + inner
    return inner


def _in_contents(pdf: bytes, der: bytes) -> bytes:
    """`der` in the signature's /Contents hole (padded with zeros as a signer would)."""
    match = re.search(rb"/Contents <([0-9a-fA-F]+)>", pdf)
    assert match is not None
    hole = len(match.group(1))
    encoded = der.hex().encode()[:hole].ljust(hole, b"0")
    return pdf[: match.start(1)] + encoded + pdf[match.end(1) :]


@pytest.fixture(scope="module")
def sealed(shared_licence_env: LicenceEnv) -> tuple[LicenceEnv, bytes, bytes]:
    identifier = issue_example(shared_licence_env, FOOD_TYPE).licence.identifier
    queries = shared_licence_env.services.queries
    return shared_licence_env, queries.file(CLI_ACTOR, identifier, "pdf"), queries.file(CLI_ACTOR, identifier, "ofd")


def test_hostile_files_are_refused_quickly_in_bounded_memory(sealed: tuple[LicenceEnv, bytes, bytes]) -> None:
    env, pdf, ofd = sealed
    byte_range = re.search(rb"/ByteRange \[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    assert byte_range is not None
    last = byte_range.group(4)  # the length of the signed part after the hole: made to reach past the end
    beyond = pdf[: byte_range.start(4)] + b"9" * len(last) + pdf[byte_range.end(4) :]
    cases = {
        "empty": b"",
        "truncated pdf": pdf[:1000],
        "pdf without its end": pdf[: len(pdf) - 4000],
        "byte range beyond the file": beyond,
        "deeply nested ASN.1 signature": _in_contents(pdf, _nested_der(3000)),
        "ASN.1 with a length past its end": _in_contents(pdf, b"\x30\x84\x7f\xff\xff\xff\x02\x01\x01"),
        "too large": b"%PDF-1.7\n" + bytes(MAX_UPLOAD_BYTES),
        "truncated ofd": ofd[: len(ofd) // 2],
        "ofd entity expansion": _with_part(ofd, "OFD.xml", LAUGHS),
        "ofd external entity": _with_part(
            ofd, "OFD.xml", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
        ),
        "zip with a path out of it": _with_part(ofd, "OFD.xml", b"<a/>").replace(b"OFD.xml", b"../O.xm"),
    }
    for name, data in cases.items():
        tracemalloc.start()
        started = time.perf_counter()
        report = env.services.verification.verify_file(data)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert report.result is Status.INVALID, (name, report.reason, report.message)
        assert report.reason and report.message, name
        # Generous bounds (shared machines): what matters is no blow-up, not the exact figures.
        assert seconds < 10, (name, seconds)
        assert peak < 200 * 1024 * 1024, (name, peak)

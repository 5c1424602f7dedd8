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


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of `objects` (object 1 the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _many_signature_fields(count: int) -> bytes:
    """Attack: `count` signature fields whose signature has no /SubFilter (1.2 MB for 12,000). pyHanko
    logged a warning with a trace for each: 123 MB of log and 47 s of CPU."""
    first_field = 5
    fields = b" ".join(b"%d 0 R" % (first_field + n) for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [%s] /SigFlags 3 >> >>" % fields,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        b"<< /Type /Sig /Filter /Adobe.PPKLite /ByteRange [0 0 0 0] /Contents <00> >>",
    ]
    objects += [b"<< /FT /Sig /T (f%d) /V 4 0 R >>" % n for n in range(count)]
    return _pdf(objects)


def _utf16_dtd(xml: bytes) -> bytes:
    """An entity-expansion DTD written in UTF-16, which a byte search for "<!DOCTYPE" does not see."""
    return xml.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")


@pytest.fixture(scope="module")
def sealed(shared_licence_env: LicenceEnv) -> tuple[LicenceEnv, bytes, bytes]:
    identifier = issue_example(shared_licence_env, FOOD_TYPE).licence.identifier
    queries = shared_licence_env.services.queries
    return shared_licence_env, queries.file(CLI_ACTOR, identifier, "pdf"), queries.file(CLI_ACTOR, identifier, "ofd")


def test_hostile_files_are_refused_quickly_in_bounded_memory(
    sealed: tuple[LicenceEnv, bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
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
        "ofd entity expansion in UTF-16": _with_part(ofd, "OFD.xml", _utf16_dtd(LAUGHS)),
        "pdf with 12,000 signature fields": _many_signature_fields(12_000),
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
    # A handful of log lines per document, not one (with a trace) per signature field.
    assert len(caplog.text) < 20_000, len(caplog.text)

"""A faster reader for PDF hex strings, in place of pyHanko's own.

pyHanko reads a hex string one byte and one generator step at a time: a signature's /Contents
(about 5,000 hex digits) took most of the 5 ms of opening one of our sealed PDFs. This reader
finds the closing '>' in bulk and decodes with binascii, and raises pyHanko's error for a stray
byte or a missing '>' (pyHanko took 18 s to find that a 20 MB string had no end); for a '%'
comment inside the string it rewinds and lets pyHanko's reader decide. tests/verification/
test_pdf_hex.py compares the two on generated input.
"""

from __future__ import annotations

import binascii
import re
from typing import IO, Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError

_PYHANKO_READER = generic.read_hex_string_from_stream
_WHITESPACE = b" \n\r\t\f\x00"  # PDF whitespace, as pyHanko's misc.PDF_WHITESPACE
_PLAIN_BODY = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
_CHUNK = 16384


def read_hex_string(stream: IO[bytes]) -> Any:
    """Read `<...>` at the stream's position into a PDF string object, as pyHanko would."""
    start = stream.tell()
    stream.read(1)  # the '<'
    chunks: list[bytes] = []
    closed = False
    while not closed and (chunk := stream.read(_CHUNK)):
        end = chunk.find(b">")  # searched once per chunk: linear even for a hostile, endless string
        closed = end >= 0
        chunks.append(chunk[:end] if closed else chunk)
    body = b"".join(chunks)
    if b"%" in body:  # a comment, which may even hide a '>': pyHanko's rules
        stream.seek(start)
        return _PYHANKO_READER(stream)
    if not closed:
        raise PdfStreamError("Stream ended prematurely")
    if not _PLAIN_BODY.fullmatch(body):
        raise PdfStreamError(f"Unexpected token in hex string: {_first_bad(body)!r}")
    stream.seek(start + 1 + len(body) + 1)
    digits = body.translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def _first_bad(body: bytes) -> bytes:
    bad = re.search(rb"[^0-9A-Fa-f \n\r\t\f\x00]", body)
    return body[bad.start() : bad.start() + 1] if bad else b""


def install() -> None:
    """Use this reader wherever pyHanko's parser reads a hex string (idempotent)."""
    generic.read_hex_string_from_stream = read_hex_string

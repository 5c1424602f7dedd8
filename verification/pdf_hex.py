"""A faster reader for PDF hex strings, in place of pyHanko's own.

pyHanko reads a hex string one byte and one generator step at a time: a signature's /Contents
(about 5,000 hex digits) took most of the 5 ms of opening one of our sealed PDFs. This reader
finds the closing '>' in bulk and decodes with binascii; for anything it is not sure of (a '%'
comment, a byte that is neither a hex digit nor whitespace, no closing '>') it rewinds and lets
pyHanko's reader decide, so results and errors stay pyHanko's (tests/verification/test_pdf_hex.py
compares the two on generated input).
"""

from __future__ import annotations

import binascii
import re
from typing import IO, Any

from pyhanko.pdf_utils import generic

_PYHANKO_READER = generic.read_hex_string_from_stream
_WHITESPACE = b" \n\r\t\f\x00"  # PDF whitespace, as pyHanko's misc.PDF_WHITESPACE
_PLAIN_BODY = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
_CHUNK = 16384


def read_hex_string(stream: IO[bytes]) -> Any:
    """Read `<...>` at the stream's position into a PDF string object, as pyHanko would."""
    start = stream.tell()
    stream.read(1)  # the '<'
    body = b""
    while (end := body.find(b">")) < 0:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        body += chunk
    if end < 0 or not _PLAIN_BODY.fullmatch(body, 0, end):
        stream.seek(start)
        return _PYHANKO_READER(stream)
    stream.seek(start + 1 + end + 1)
    digits = body[:end].translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def install() -> None:
    """Use this reader wherever pyHanko's parser reads a hex string (idempotent)."""
    generic.read_hex_string_from_stream = read_hex_string

"""pyHanko's PDF reader with a faster reader for hex strings, which sealing (seals.pdf_seal) and
verification (verification.pdf_file) call explicitly.

pyHanko reads a hex string one byte and one generator step at a time: a signature's /Contents
(about 5,000 hex digits in our licences, 10,000 and more from other signers) took most of the time
of opening a sealed PDF (4.3 of 5.2 ms), and 18 s for a hostile 20 MB string without an end.
`read_hex_string` finds the closing '>' in bulk and decodes with binascii, with pyHanko's results
and errors (tests/seals/test_pdf_reader.py compares the two on generated input); for a '%'
comment inside the string it rewinds and lets pyHanko's reader decide.

pyHanko calls its own reader from generic.read_object and offers no hook for another, and we do
not replace it in pyHanko's module (that would change every reader in the process). Instead
`FastHexPdfReader` is a PdfFileReader whose indirect objects are parsed here: dictionaries and
arrays as pyHanko parses them (DictionaryObject/ArrayObject.read_from_stream), hex strings with
`read_hex_string`, and everything else (names, numbers, references, literal strings, stream data)
by pyHanko itself. Objects in object streams and in encrypted files, and the trailer (read while
the reader is built: its /ID is two short strings), are left to pyHanko. What this relies on in
pyHanko (PdfFileReader._read_object and its indirect-object branch, generic._maybe_read_stream_payload,
xref.read_object_header) is checked by the canary tests in tests/seals/test_pdf_reader.py, which
also read whole files both ways; pyproject.toml bounds the pyHanko version.
docs/pyhanko-hex-reader.patch offers the faster hex reader to pyHanko itself.
"""

from __future__ import annotations

import binascii
import logging
import os
import re
from collections.abc import Callable
from typing import IO, Any, Protocol, cast

from pyhanko.pdf_utils import generic, misc, xref
from pyhanko.pdf_utils.misc import PdfReadError, PdfStreamError, PdfStrictReadError
from pyhanko.pdf_utils.reader import PdfFileReader

__all__ = ["FastHexPdfReader"]

_WHITESPACE = b" \n\r\t\f\x00"  # PDF whitespace, as pyHanko's misc.PDF_WHITESPACE
_PLAIN_BODY = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
_CHUNK = 16384
# pyHanko's logger for the warnings its dictionary reader gives, so they read the same.
_PYHANKO_GENERIC_LOG = logging.getLogger(generic.__name__)


# pyHanko leaves these unannotated (calling them from typed code is an untyped call): typed views
# of them, with the types their bodies give (pyHanko 0.38; tests/seals/test_pdf_reader.py pins
# their parameters).
class _ReadNonWhitespace(Protocol):
    def __call__(self, stream: IO[bytes], seek_back: bool = False, allow_eof: bool = False) -> bytes: ...


_read_non_whitespace = cast(_ReadNonWhitespace, misc.read_non_whitespace)
_read_object_header = cast(Callable[[IO[bytes], bool], tuple[int, int]], xref.read_object_header)
_read_name = cast(Callable[[IO[bytes]], generic.NameObject], generic.NameObject.read_from_stream)
_maybe_read_stream_payload = cast(
    Callable[[IO[bytes], dict[Any, Any], Any], bytes | None], generic._maybe_read_stream_payload
)
_dictionary_object = cast(Callable[[dict[Any, Any]], generic.DictionaryObject], generic.DictionaryObject)


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
        return generic.read_hex_string_from_stream(stream)
    if not _PLAIN_BODY.fullmatch(body):  # pyHanko stops at the first stray byte, end or no end
        raise PdfStreamError(f"Unexpected token in hex string: {_first_bad(body)!r}")
    if not closed:
        raise PdfStreamError("Stream ended prematurely")
    stream.seek(start + 1 + len(body) + 1)
    digits = body.translate(None, _WHITESPACE)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def _first_bad(body: bytes) -> bytes:
    bad = re.search(rb"[^0-9A-Fa-f \n\r\t\f\x00]", body)
    return body[bad.start() : bad.start() + 1] if bad else b""


class FastHexPdfReader(PdfFileReader):
    """pyHanko's PdfFileReader, reading the hex strings of indirect objects with `read_hex_string`."""

    def _read_object(
        self,
        ref: generic.Reference,
        marker: Any,
        never_decrypt: bool = False,
        as_metadata_stream: bool = False,
    ) -> Any:
        # The indirect-object branch of PdfFileReader._read_object, for objects at a file offset
        # that need no decrypting (pyHanko asks `encrypted` only when it would decrypt, as here:
        # reading /Encrypt itself comes with never_decrypt).
        if (
            isinstance(marker, int)
            and not isinstance(marker, bool)
            and not as_metadata_stream
            and (never_decrypt or not self.encrypted)
        ):
            return self._read_plain_object(ref, marker)
        return super()._read_object(ref, marker, never_decrypt=never_decrypt, as_metadata_stream=as_metadata_stream)

    def _read_plain_object(self, ref: generic.Reference, offset: int) -> Any:
        stream = self.stream
        stream.seek(offset)
        idnum, generation = _read_object_header(stream, self.strict)
        if idnum != ref.idnum or generation != ref.generation:
            raise PdfReadError(
                f"Expected object ID ({ref.idnum} {ref.generation}) does not match actual ({idnum} {generation})."
            )
        value = read_object(stream, generic.Reference(idnum, generation, self))
        _read_non_whitespace(stream, seek_back=True)
        data_end = stream.tell() - 1
        endobj = stream.read(6)
        if endobj != b"endobj":
            if self.strict:
                raise PdfStrictReadError(f"Expected endobj marker at position {data_end} but found {endobj!r}")
        else:
            _read_non_whitespace(stream, seek_back=True)
        return value


def read_object(stream: IO[bytes], container_ref: Any) -> Any:
    """generic.read_object for the objects of a file (not content streams), with `read_hex_string`
    for hex strings in it at any depth."""
    while (first := stream.read(1)) == b"%":
        stream.seek(-1, os.SEEK_CUR)
        _skip_comment(stream)
    value: generic.PdfObject
    if first == b"<":
        second = stream.read(1)
        stream.seek(-1 - len(second), os.SEEK_CUR)
        value = _read_dictionary(stream, container_ref) if second == b"<" else read_hex_string(stream)
    elif first == b"[":
        stream.seek(-1, os.SEEK_CUR)
        value = _read_array(stream, container_ref)
    else:
        stream.seek(-len(first), os.SEEK_CUR)
        return generic.read_object(stream, container_ref)  # it sets container_ref
    value.container_ref = container_ref
    return value


def _skip_comment(stream: IO[bytes]) -> None:
    """As generic.read_object passes over a comment before an object (to the end of the line, then
    whitespace); pyHanko would wait forever for the end of a line at the end of the stream."""
    while (byte := stream.read(1)) not in (b"\r", b"\n"):
        if not byte:
            raise PdfStreamError("Stream ended prematurely")
    _read_non_whitespace(stream)
    stream.seek(-1, os.SEEK_CUR)


def _read_array(stream: IO[bytes], container_ref: Any) -> generic.ArrayObject:
    """generic.ArrayObject.read_from_stream with this module's read_object."""
    array = generic.ArrayObject()
    if stream.read(1) != b"[":
        raise PdfReadError("Could not read array")
    while _read_non_whitespace(stream) != b"]":
        stream.seek(-1, os.SEEK_CUR)
        array.append(read_object(stream, container_ref))
    return array


def _read_dictionary(stream: IO[bytes], container_ref: Any) -> generic.DictionaryObject:
    """generic.DictionaryObject.read_from_stream with this module's read_object (not for XMP
    metadata streams, which PdfFileReader asks for with as_metadata_stream and pyHanko reads)."""
    if stream.read(2) != b"<<":
        raise PdfReadError(f"Dictionary read error at byte 0x{hex(stream.tell())}: stream must begin with '<<'")
    data: dict[Any, Any] = {}
    handler = container_ref.get_pdf_handler()
    while True:
        if _read_non_whitespace(stream) == b">":
            stream.read(1)
            break
        stream.seek(-1, os.SEEK_CUR)
        try:
            key = _read_name(stream)
        except Exception as exc:
            raise PdfReadError(
                f"Failed to read dictionary key at byte 0x{hex(stream.tell())}; expected PDF name"
            ) from exc
        _read_non_whitespace(stream)
        stream.seek(-1, os.SEEK_CUR)
        value = read_object(stream, container_ref)
        if key not in data:
            data[key] = value
        else:
            message = f"Multiple definitions in dictionary at byte {hex(stream.tell())} for key {key}"
            if handler.strict:
                raise PdfStrictReadError(message)
            _PYHANKO_GENERIC_LOG.warning(message)
    stream_data = _maybe_read_stream_payload(stream, data, handler)
    if stream_data is not None:
        return generic.StreamObject(data, encoded_data=stream_data)
    return _dictionary_object(data)

"""Our hex-string reader against pyHanko's own: the same value (or the same error) and the stream
left at the same place, on generated input."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.misc import PdfError

from verification import pdf_hex

PYHANKO = pdf_hex._PYHANKO_READER
ALPHABET = b"0123456789abcdefABCDEF \n\r\t\f\x00>%gZ<("


def _outcome(reader: object, data: bytes) -> tuple[object, ...]:
    stream = io.BytesIO(data)
    try:
        value = reader(stream)  # type: ignore[operator]
    except PdfError as exc:
        return ("error", type(exc).__name__)
    return (
        type(value).__name__,
        value.original_bytes if hasattr(value, "original_bytes") else bytes(value),
        stream.tell(),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(ALPHABET)), max_size=80).map(bytes))
def test_same_as_pyhanko_on_generated_input(body: bytes) -> None:
    data = b"<" + body
    assert _outcome(pdf_hex.read_hex_string, data) == _outcome(PYHANKO, data)


@pytest.mark.parametrize(
    "data",
    [
        b"<>",
        b"<4E6F762073686D6F7A206B6120706F702E> trailing",
        b"<901FA3>",
        b"<901FA>",  # odd: a final 0 is implied
        b"<90 1f\na3\r\n>",
        b"<FEFF004100420043>",  # UTF-16BE text
        b"<" + b"00" * 20000 + b">",  # longer than one chunk
        b"<41 % a comment > inside\n42>",
        b"<41",  # no end
        b"<" + b"00" * 20000,  # no end, over several chunks
        b"<" + b"00" * 20000 + b"x>",  # a stray byte after the first chunk
        b"<4G>",
    ],
)
def test_same_as_pyhanko_on_known_cases(data: bytes) -> None:
    assert _outcome(pdf_hex.read_hex_string, data) == _outcome(PYHANKO, data)

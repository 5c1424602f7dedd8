"""seals.pdf_reader against pyHanko, the canary for what it relies on in pyHanko: its hex-string
reader gives pyHanko's value (or error) and leaves the stream where pyHanko's does; its object reader
gives what generic.read_object gives on generated PDF syntax; FastHexPdfReader reads every object
of sealed files as PdfFileReader does; and the pyHanko internals it builds on are still there."""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pyhanko.pdf_utils import generic, xref
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from seals import pdf_reader
from seals.licence_files import seal_licence
from seals.pdf_seal import seal_pdf
from templates.backgrounds import prepare_background
from templates.fonts import FontSet
from templates.layout import build_layout, sample_face
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import NOW, PkiHierarchy

PYHANKO = generic.read_hex_string_from_stream
ALPHABET = b"0123456789abcdefABCDEF \n\r\t\f\x00>%gZ<("
FOOD = Path(__file__).resolve().parents[2] / "examples" / "types" / "food-business-licence.yaml"
BOX = (140.0, 230.0, 42.0, 42.0)


# --- the hex-string reader -----------------------------------------------------------------------


def _outcome(reader: object, data: bytes) -> tuple[object, ...]:
    stream = io.BytesIO(data)
    try:
        value = reader(stream)  # type: ignore[operator]
    except PdfError as exc:
        return ("error", type(exc).__name__, str(exc))
    return (
        type(value).__name__,
        value.original_bytes if hasattr(value, "original_bytes") else bytes(value),
        stream.tell(),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(ALPHABET)), max_size=80).map(bytes))
def test_same_as_pyhanko_on_generated_input(body: bytes) -> None:
    data = b"<" + body
    assert _outcome(pdf_reader.read_hex_string, data) == _outcome(PYHANKO, data)


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
        b"<4G",  # a stray byte and no end: pyHanko names the byte
    ],
)
def test_same_as_pyhanko_on_known_cases(data: bytes) -> None:
    assert _outcome(pdf_reader.read_hex_string, data) == _outcome(PYHANKO, data)


# --- objects -------------------------------------------------------------------------------------


class _Handler:
    """What generic.read_object asks of the file it reads from."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict


def _canonical(value: Any, container: Any) -> Any:
    """A value's type and content, its parts' too, and whether each names `container` as pyHanko's reader sets it."""
    mine = getattr(value, "container_ref", None) is container
    if isinstance(value, generic.StreamObject):
        items = tuple((str(k), _canonical(v, container)) for k, v in dict.items(value))
        return ("stream", items, value.encoded_data, mine)
    if isinstance(value, generic.DictionaryObject):
        return ("dict", tuple((str(k), _canonical(v, container)) for k, v in dict.items(value)), mine)
    if isinstance(value, generic.ArrayObject):
        return ("array", tuple(_canonical(v, container) for v in list.__iter__(value)), mine)
    if isinstance(value, generic.IndirectObject):
        return ("ref", value.idnum, value.generation, mine)
    if isinstance(value, generic.NullObject):
        return ("null", mine)
    if isinstance(value, generic.ByteStringObject | generic.TextStringObject):
        return (type(value).__name__, value.original_bytes, mine)
    return (type(value).__name__, str(value), mine)


def _read(reader: Any, data: bytes, strict: bool, messages: bool = True) -> tuple[object, ...]:
    container = generic.Reference(1, 0, _Handler(strict))  # type: ignore[arg-type]
    stream = io.BytesIO(data)
    try:
        value = reader(stream, container)
    except Exception as exc:  # pyHanko's own errors on broken numbers are ValueError and decimal's
        return ("error", type(exc).__name__, str(exc) if messages else "")
    return (_canonical(value, container), stream.tell())


_SPACE = st.sampled_from([b" ", b"\n", b"\r\n", b"  ", b"\t", b" % a comment\n", b"\x00"])
_SCALARS = st.one_of(
    st.integers(-999, 999).map(lambda n: b"%d" % n),
    st.sampled_from([b"1.5", b"-.25", b"true", b"false", b"null", b"/Name", b"/A#20B", b"/Contents", b"3 0 R"]),
    st.binary(max_size=12).map(lambda b: b"<" + b.hex().encode() + b">"),
    st.binary(max_size=12).map(lambda b: b"<" + b.hex().upper().encode()[:-1] + b">"),  # odd
    st.sampled_from([b"<41 42\n43>", b"< >", b"(a string)", b"(nested (paren) \\) string)", b"(\\101\\n)"]),
    st.sampled_from([b"<feff00410042>", b"<" + b"ab" * 3000 + b">"]),
)


def _pdf_values() -> st.SearchStrategy[bytes]:
    def containers(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        arrays = st.lists(st.tuples(_SPACE, children), max_size=4).map(
            lambda items: b"[" + b"".join(s + v for s, v in items) + b" ]"
        )
        keys = st.sampled_from([b"/Type", b"/Contents", b"/ByteRange", b"/M", b"/K#31", b"/Type"])  # a duplicate
        dicts = st.lists(st.tuples(keys, _SPACE, children, _SPACE), max_size=4).map(
            lambda items: b"<<" + b"".join(k + s + v + t for k, s, v, t in items) + b">>"
        )
        return arrays | dicts

    return st.recursive(_SCALARS, containers, max_leaves=12)


def _stream_objects() -> st.SearchStrategy[bytes]:
    def stream(entries: bytes, data: bytes) -> bytes:
        return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), entries, data)

    return st.builds(stream, st.sampled_from([b"", b"/Filter /FlateDecode", b"/Id <0a0b>"]), st.binary(max_size=40))


@settings(max_examples=500, deadline=None)
@given(
    before=st.sampled_from([b"", b"% a comment first\n", b"%\r\n  "]),
    value=st.one_of(_pdf_values(), _stream_objects()),
    after=st.sampled_from([b"", b" endobj", b"\n"]),
)
def test_objects_read_as_pyhanko_reads_them(before: bytes, value: bytes, after: bytes) -> None:
    data = before + value + after
    for strict in (False, True):
        assert _read(pdf_reader.read_object, data, strict) == _read(generic.read_object, data, strict)


@settings(max_examples=300, deadline=None)
@given(value=_pdf_values(), cut=st.integers(min_value=1, max_value=400), junk=st.sampled_from([b"", b")", b"]", b">"]))
def test_broken_objects_fail_as_pyhanko_fails(value: bytes, cut: int, junk: bytes) -> None:
    """The same error, but not always the same message: where a file ends just after a '<',
    pyHanko steps back two bytes after reading one and names the byte before it."""
    data = value[: max(1, len(value) - cut)] + junk
    ours = _read(pdf_reader.read_object, data, False, messages=False)
    assert ours == _read(generic.read_object, data, False, messages=False)


# --- whole files ---------------------------------------------------------------------------------


def _pyhanko_written() -> bytes:
    writer = PdfFileWriter()  # xref stream, object streams
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 595, 842)]),
            generic.pdf_name("/Contents"): writer.add_object(
                generic.StreamObject(stream_data=b"0 0 1 rg 72 600 200 100 re f")
            ),
            generic.pdf_name("/Resources"): generic.DictionaryObject(),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pillow_written() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1240, 1754), "white").save(out, "PDF", resolution=150)
    return out.getvalue()


@pytest.fixture(scope="module")
def sealed_files(pki: PkiHierarchy, eseal: bytes, seal_picture: bytes, fonts: FontSet) -> dict[str, bytes]:
    signer = pki.seal_signer
    spec = parse_model(LicenceTypeSpec, yaml.safe_load(FOOD.read_text(encoding="utf-8")))
    assert spec.template is not None
    layout = build_layout(
        spec, spec.template, prepare_background(spec.template, {}), sample_face(spec, today=NOW.date()), fonts
    )
    licence = seal_licence(layout, fonts, signer, eseal, seal_picture, NOW).pdf
    once = seal_pdf(_pyhanko_written(), signer, seal_picture, 0, BOX, now=NOW)
    return {
        "licence": licence,
        "pyHanko's writer, sealed twice": seal_pdf(once, signer, seal_picture, 0, (20.0, 20.0, 30.0, 30.0), now=NOW),
        "Pillow's writer, sealed": seal_pdf(_pillow_written(), signer, seal_picture, 0, BOX, now=NOW),
    }


def _objects(reader: PdfFileReader) -> dict[tuple[int, int, int], Any]:
    """Every object of every revision, as read from the file (not from the reader's cache)."""
    found = {}
    for revision in range(reader.xrefs.total_revisions):
        for ref in reader.xrefs.explicit_refs_in_revision(revision):
            value = reader.get_object(ref, revision=revision)
            found[(revision, ref.idnum, ref.generation)] = _canonical(value, None)
    return found


@pytest.mark.parametrize("strict", [False, True])
def test_every_object_of_sealed_files_reads_as_with_pyhanko(sealed_files: dict[str, bytes], strict: bool) -> None:
    for name, data in sealed_files.items():
        try:
            theirs = PdfFileReader(io.BytesIO(data), strict=strict)
        except PdfError as exc:  # Pillow's xref table is not strict enough for pyHanko's strict mode
            with pytest.raises(type(exc)):
                pdf_reader.FastHexPdfReader(io.BytesIO(data), strict=strict)
            continue
        ours = pdf_reader.FastHexPdfReader(io.BytesIO(data), strict=strict)
        assert _objects(ours) == _objects(theirs), name
        signatures = [(s.field_name, bytes(s.sig_object["/Contents"])) for s in ours.embedded_signatures]
        assert signatures == [(s.field_name, bytes(s.sig_object["/Contents"])) for s in theirs.embedded_signatures]


def test_signature_contents_go_through_our_hex_reader(
    sealed_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    lengths: list[int] = []
    ours = pdf_reader.read_hex_string

    def counting(stream: io.BytesIO) -> Any:
        value = ours(stream)
        lengths.append(len(value.original_bytes))
        return value

    monkeypatch.setattr(pdf_reader, "read_hex_string", counting)
    reader = pdf_reader.FastHexPdfReader(io.BytesIO(sealed_files["licence"]), strict=False)
    [signature] = reader.embedded_signatures
    assert len(bytes(signature.sig_object["/Contents"])) in lengths


def test_pyhanko_still_offers_what_the_reader_builds_on() -> None:
    """The internals FastHexPdfReader overrides or calls, as pyHanko 0.38 has them."""
    assert list(inspect.signature(PdfFileReader._read_object).parameters) == [
        "self",
        "ref",
        "marker",
        "never_decrypt",
        "as_metadata_stream",
    ]
    assert list(inspect.signature(generic._maybe_read_stream_payload).parameters) == ["stream", "data", "handler"]
    assert list(inspect.signature(xref.read_object_header).parameters) == ["stream", "strict"]
    assert list(inspect.signature(generic.read_object).parameters)[:2] == ["stream", "container_ref"]
    # pyHanko's own reader is pyHanko's, untouched by anything of ours.
    assert generic.read_hex_string_from_stream.__module__ == "pyhanko.pdf_utils.generic"
    source = inspect.getsource(PdfFileReader._read_object)
    assert "generic.read_object(" in source and "read_object_header(" in source and "endobj" in source

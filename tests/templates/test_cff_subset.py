"""The direct CFF subsetter, checked by code we did not write: fontTools (parser, charstring
decompiler, desubroutiniser, pens), the OpenType Sanitizer that Chrome and Firefox run, and FreeType
(through Pillow) rendering the subset and the whole font to the same pixels."""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from fontTools.cffLib import CFFFontSet
from fontTools.cffLib.transforms import desubroutinizeCharString
from fontTools.pens.recordingPen import RecordingPen
from fontTools.ttLib import TTFont
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from templates.cff_subset import CffSubsetter
from templates.errors import FontError
from templates.fonts import FontSet, SubsetFont

LICENCE_TEXT = "中华人民共和国营业执照统一社会信用代码名称类型法定代表人经营范围注册资本成立日期住所登记机关年月日"
MIXED_TEXT = LICENCE_TEXT + "0123456789 ABCXYZ abcxyz（），。、：；“”《》—…·￥%@#&*"
ROLES = ("serif", "sans")


class Original:
    """The whole font as fontTools sees it, for comparisons."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.font = TTFont(str(path), lazy=True)
        self.cmap: dict[int, str] = self.font.getBestCmap()
        self.glyphs = self.font.getGlyphSet()
        self.hmtx = self.font["hmtx"]
        self.units_per_em: int = self.font["head"].unitsPerEm
        self._charstrings = self.font["CFF "].cff.topDictIndex[0].CharStrings
        self._outlines: dict[str, list[tuple[str, tuple[object, ...]]]] = {}
        self._programs: dict[str, list[object]] = {}

    def outline(self, name: str) -> list[tuple[str, tuple[object, ...]]]:
        if name not in self._outlines:
            pen = RecordingPen()
            self.glyphs[name].draw(pen)
            self._outlines[name] = pen.value
        return self._outlines[name]

    def program(self, name: str) -> list[object]:
        """fontTools' own desubroutinisation of the glyph: numbers and operators, hints included."""
        if name not in self._programs:
            charstring = self._charstrings[name]
            desubroutinizeCharString(charstring)
            self._programs[name] = list(charstring.program)
        return self._programs[name]


@pytest.fixture(scope="module")
def subsetters(fonts: FontSet) -> dict[str, CffSubsetter]:
    return {role: CffSubsetter(fonts.get(role).path) for role in ROLES}


@pytest.fixture(scope="module")
def originals(fonts: FontSet) -> dict[str, Original]:
    return {role: Original(fonts.get(role).path) for role in ROLES}


def recorded(glyph_set: object, name: str) -> list[tuple[str, tuple[object, ...]]]:
    pen = RecordingPen()
    glyph_set[name].draw(pen)  # type: ignore[index]
    return pen.value


def check_round_trip(subset: SubsetFont, original: Original, chars: Iterable[str]) -> None:
    """Everything a reader of `otf` or `cff` can see agrees with the whole font, glyph by glyph."""
    chars = set(chars)
    font = TTFont(io.BytesIO(subset.otf), checkChecksums=2)  # table checksums must be right
    assert font.sfntVersion == "OTTO"
    # The whole file sums to 0xB1B0AFBA once head.checkSumAdjustment is in (OpenType, 'head').
    padded = subset.otf + bytes(-len(subset.otf) % 4)
    assert sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF == 0xB1B0AFBA
    assert sorted(font.keys()) == sorted(
        ["GlyphOrder", "CFF ", "OS/2", "cmap", "head", "hhea", "hmtx", "maxp", "name", "post"]
    )
    cmap = font.getBestCmap()
    assert set(cmap) == {ord(c) for c in chars}
    order = font.getGlyphOrder()
    assert order[0] == ".notdef"
    assert font["maxp"].numGlyphs == len(order) == len({original.cmap[ord(c)] for c in chars} | {".notdef"})
    assert font["hhea"].numberOfHMetrics <= len(order)
    assert font["post"].formatType == 3.0
    gids = [original.font.getGlyphID(name) for name in order]
    assert gids == sorted(gids), "glyphs keep the original order"
    glyphs = font.getGlyphSet()
    for char in chars:
        name = cmap[ord(char)]
        assert name == original.cmap[ord(char)], "the subset's charset keeps the original CIDs"
        assert font["hmtx"][name] == original.hmtx[name]
        cid = int(name[3:])
        assert subset.cids[char] == cid
        assert subset.widths[cid] == round(original.hmtx[name][0] * 1000 / original.units_per_em)
    assert set(subset.widths) == set(subset.cids.values())
    for name in order:
        assert recorded(glyphs, name) == original.outline(name), name

    # The bare CFF, as a PDF reader gets it (FontFile3 /CIDFontType0C).
    cff = CFFFontSet()
    cff.decompile(io.BytesIO(subset.cff), None)
    assert font.reader["CFF "] == subset.cff
    top = cff.topDictIndex[0]
    assert top.ROS == ("Adobe", "Identity", 0)
    assert top.CIDCount > max(subset.cids.values())
    assert len(cff.GlobalSubrs) == 0
    assert all(not hasattr(fd.Private, "Subrs") for fd in top.FDArray)
    used_fds = {original.font["CFF "].cff.topDictIndex[0].CharStrings.getItemAndSelector(n)[1] for n in order}
    assert len(top.FDArray) == len(used_fds), "only the Font DICTs the glyphs use"
    assert list(top.charset) == order
    original_charstrings = original.font["CFF "].cff.topDictIndex[0].CharStrings
    for name in order:
        charstring, fd = top.CharStrings.getItemAndSelector(name)
        original_fd = original_charstrings.getItemAndSelector(name)[1]
        original_font_dict = original.font["CFF "].cff.topDictIndex[0].FDArray[original_fd]
        assert top.FDArray[fd].FontName == original_font_dict.FontName
        assert private_dict(top.FDArray[fd].Private) == private_dict(original_font_dict.Private)
        charstring.decompile()
        assert "callsubr" not in charstring.program and "callgsubr" not in charstring.program
        assert charstring.program == original.program(name), f"{name}: hints or path differ"
        assert recorded(top.CharStrings, name) == original.outline(name), name


def private_dict(private: object) -> dict[str, object]:
    """Hint zones, stem widths and width defaults: everything but the subroutines."""
    return {key: value for key, value in private.rawDict.items() if key != "Subrs"}  # type: ignore[attr-defined]


def sanitize(otf: bytes, tmp_path: Path) -> None:
    ots = pytest.importorskip("ots", reason="opentype-sanitizer is not installed (pip install opentype-sanitizer)")
    source, target = tmp_path / "subset.otf", tmp_path / "sanitized.otf"
    source.write_bytes(otf)
    result = ots.sanitize(str(source), str(target), capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace") + result.stdout.decode(errors="replace")
    # OTS drops tables it cannot vouch for without failing: every table must survive.
    assert sorted(TTFont(str(target)).keys()) == sorted(TTFont(io.BytesIO(otf)).keys())


def render(font_file: str | io.BytesIO, text: str) -> Image.Image:
    font = ImageFont.truetype(font_file, size=40, layout_engine=ImageFont.Layout.BASIC)
    image = Image.new("L", (44 * len(text) + 20, 70), 255)
    ImageDraw.Draw(image).text((10, 10), text, font=font, fill=0)
    return image


def assert_same_pixels(subset: SubsetFont, original: Original, text: str) -> None:
    whole = render(str(original.path), text)
    part = render(io.BytesIO(subset.otf), text)
    assert whole.tobytes() == part.tobytes()
    assert whole.getextrema()[0] == 0, "something was drawn"


@pytest.mark.parametrize("role", ROLES)
def test_licence_text_round_trips(
    role: str, subsetters: dict[str, CffSubsetter], originals: dict[str, Original]
) -> None:
    chars = set(MIXED_TEXT)
    subset = subsetters[role].subset(chars)
    check_round_trip(subset, originals[role], chars)
    assert subset.postscript_name == originals[role].font["name"].getDebugName(6)
    cmap = TTFont(io.BytesIO(subset.otf))["cmap"]
    assert [(t.platformID, t.platEncID, t.format) for t in cmap.tables] == [(3, 1, 4)], "BMP only: format 4"


@pytest.mark.parametrize("role", ROLES)
def test_non_bmp_char_gets_a_format_12_cmap(
    role: str, subsetters: dict[str, CffSubsetter], originals: dict[str, Original], tmp_path: Path
) -> None:
    beyond = [chr(c) for c in sorted(originals[role].cmap) if c > 0xFFFF][:3]
    assert beyond, "the Noto CJK fonts map some characters beyond the BMP"
    chars = set("证照A" + "".join(beyond))
    subset = subsetters[role].subset(chars)
    check_round_trip(subset, originals[role], chars)
    cmap = TTFont(io.BytesIO(subset.otf))["cmap"]
    assert [(t.platformID, t.platEncID, t.format) for t in cmap.tables] == [(3, 1, 4), (3, 10, 12)]
    assert set(cmap.getcmap(3, 1).cmap) == {ord(c) for c in chars if ord(c) <= 0xFFFF}
    sanitize(subset.otf, tmp_path)
    assert_same_pixels(subset, originals[role], "".join(sorted(chars)))


@pytest.mark.parametrize("role", ROLES)
def test_sanitizer_accepts_the_subset(role: str, subsetters: dict[str, CffSubsetter], tmp_path: Path) -> None:
    sanitize(subsetters[role].subset(MIXED_TEXT).otf, tmp_path)


@pytest.mark.parametrize("role", ROLES)
def test_freetype_draws_the_same_pixels(
    role: str, subsetters: dict[str, CffSubsetter], originals: dict[str, Original]
) -> None:
    text = "营业执照 统一社会信用代码：91350100M000100Y43（副本）"
    assert_same_pixels(subsetters[role].subset(text), originals[role], text)


@pytest.mark.parametrize("role", ROLES)
def test_blocks_of_consecutive_chars(
    role: str, subsetters: dict[str, CffSubsetter], originals: dict[str, Original], tmp_path: Path
) -> None:
    """Whole blocks: cmap segments with an idDelta and segments that list their glyphs."""
    chars = {chr(c) for c in [*range(0x20, 0x7F), *range(0x4E00, 0x4F00), *range(0xFF01, 0xFF5F)]}
    chars &= {chr(c) for c in originals[role].cmap}
    subset = subsetters[role].subset(chars)
    check_round_trip(subset, originals[role], chars)
    sanitize(subset.otf, tmp_path)
    assert_same_pixels(subset, originals[role], "".join(sorted(chars))[::7])


def test_glyph_shared_by_two_chars_appears_once(
    subsetters: dict[str, CffSubsetter], originals: dict[str, Original]
) -> None:
    original = originals["serif"]
    by_glyph: dict[str, list[int]] = {}
    for code, name in original.cmap.items():
        by_glyph.setdefault(name, []).append(code)
    pair = next(codes[:2] for codes in by_glyph.values() if len(codes) > 1)
    chars = {chr(c) for c in pair}
    subset = subsetters["serif"].subset(chars)
    check_round_trip(subset, original, chars)
    assert len(set(subset.cids.values())) == 1


def test_no_chars_is_an_error(subsetters: dict[str, CffSubsetter]) -> None:
    """OTS (so Chrome and Firefox) refuses a CFF whose only glyph is .notdef."""
    with pytest.raises(FontError):
        subsetters["sans"].subset([])


def test_missing_char_is_an_error_naming_it(subsetters: dict[str, CffSubsetter]) -> None:
    missing = next(chr(c) for c in range(0xE000, 0xF900) if not subsetters["serif"].has(chr(c)))
    with pytest.raises(FontError, match=f"U\\+{ord(missing):04X}"):
        subsetters["serif"].subset("中" + missing)


def test_not_a_cff_font_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FontError):
        CffSubsetter(b"\x00\x01\x00\x00" + bytes(100))
    with pytest.raises(FontError):
        CffSubsetter(tmp_path / "absent.otf")


def test_subsets_are_deterministic_and_thread_safe(fonts: FontSet) -> None:
    """Threads filling one cold glyph cache at once get the same bytes as a lone caller."""
    texts = [MIXED_TEXT[i::4] for i in range(4)] * 3
    expected = [CffSubsetter(fonts.sans.path).subset(text) for text in texts]
    shared = CffSubsetter(fonts.sans.path)
    results: list[SubsetFont | None] = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = shared.subset(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


# --- property: any characters of the font ---------------------------------------------------------


def char_sets(codes: list[int]) -> st.SearchStrategy[set[str]]:
    ascii_codes = [c for c in codes if 0x21 <= c < 0x7F]
    cjk = [c for c in codes if 0x4E00 <= c <= 0x9FFF]
    punctuation = [c for c in codes if 0x2000 <= c <= 0x206F or 0x3000 <= c <= 0x303F or 0xFF00 <= c <= 0xFFEF]
    beyond = [c for c in codes if c > 0xFFFF]
    pools = [
        st.sampled_from(pool).map(lambda c: [c]) for pool in (ascii_codes, cjk, punctuation, beyond, codes) if pool
    ]
    # Runs of neighbouring code points exercise cmap segments that span several characters.
    runs = st.tuples(st.integers(0, len(codes) - 1), st.integers(2, 12)).map(lambda r: codes[r[0] : r[0] + r[1]])
    return st.lists(st.one_of([*pools, runs]), min_size=1, max_size=20).map(
        lambda picked: {chr(c) for group in picked for c in group}
    )


@pytest.mark.parametrize("role", ROLES)
def test_random_char_sets_round_trip(
    role: str,
    subsetters: dict[str, CffSubsetter],
    originals: dict[str, Original],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    original = originals[role]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(chars=char_sets(sorted(original.cmap)))
    def round_trip(chars: set[str]) -> None:
        subset = subsetters[role].subset(chars)
        check_round_trip(subset, original, chars)
        sanitize(subset.otf, tmp_path_factory.mktemp("ots"))
        drawable = "".join(sorted(c for c in chars if c.isprintable() and not c.isspace()))
        if drawable:
            whole = render(str(original.path), drawable)
            assert whole.tobytes() == render(io.BytesIO(subset.otf), drawable).tobytes()

    round_trip()

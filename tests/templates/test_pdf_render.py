"""PDF rendering, proved by tools we did not write: qpdf checks the structure, pyHanko reads it,
poppler extracts the text and draws the page, fontTools reads the embedded fonts, zbar decodes
the QR. Positions are compared with the layout and with the PNG renderer."""

from __future__ import annotations

import datetime as dt
import html
import io
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from fontTools.cffLib import CFFFontSet
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageStat
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigFieldSpec, append_signature_field

from templates.backgrounds import prepare_background
from templates.errors import FontError
from templates.fonts import FontSet
from templates.layout import LicenceFace, PageLayout, TextRun, build_layout, sample_face
from templates.pdf import render_pdf
from templates.png import render_image
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import require_tool_or_skip

ROOT = Path(__file__).resolve().parents[2]
FOOD = ROOT / "examples" / "types" / "food-business-licence.yaml"
CREATED = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
PT_MM = 25.4 / 72
DPI = 150
PX = DPI / 25.4  # pixels per mm
NON_BMP = "\U0001f210"  # 🈐, squared CJK ideograph 手: in Noto SC, beyond the BMP
USCC = "11350100MB00000100"


# -- cases: the shipped food licence, and a small inline type with a photo and no background ------


@dataclass(frozen=True)
class Case:
    name: str
    layout: PageLayout
    pdf: bytes
    path: Path
    title: str | None


def food_layout(fonts: FontSet) -> tuple[LicenceTypeSpec, PageLayout]:
    spec = parse_model(LicenceTypeSpec, yaml.safe_load(FOOD.read_text(encoding="utf-8")))
    assert spec.template is not None
    background = prepare_background(spec.template, {})
    return spec, build_layout(spec, spec.template, background, sample_face(spec), fonts)


def inline_spec() -> LicenceTypeSpec:
    """A card-sized type: letter-spaced coloured title, right-aligned note, Latin words with
    spaces, a wrapped value, a photo and a character beyond the BMP."""
    data: dict[str, Any] = {
        "code": "11100000MA0000001Q009",
        "name": "测试卡",
        "defining_authority": {"name": "测试部", "uscc": "11100000MA0000001Q"},
        "issuers": [USCC],
        "issuer_level": "city",
        "holder": {"category": "legal_person", "code_types": ["001"], "name_field": "name", "code_field": "code"},
        "validity": {"kind": "long_term"},
        "fields": [
            {"key": "name", "label": "名称", "type": "text", "max_length": 20},
            {"key": "code", "label": "代码", "type": "text", "max_length": 30},
            {"key": "scope", "label": "范围", "type": "long_text", "max_length": 80},
            {"key": "photo", "label": "照片", "type": "photo"},
        ],
        "template": {
            "page": {"width_mm": 120, "height_mm": 80},
            "background": {"design": "red"},
            "texts": [
                {"text": "测试许可卡", "box": {"x": 10, "y": 4, "w": 70, "h": 10}, "font_size": 18,
                 "align": "center", "letter_spacing": 2.5, "colour": "#B0201C"},
                {"text": "仅供测试 No. 7", "box": {"x": 40, "y": 72, "w": 40, "h": 5}, "font_size": 7,
                 "font": "sans", "align": "right", "colour": "#305C96"},
            ],
            "photo": {"field": "photo", "box": {"x": 88, "y": 6, "w": 24, "h": 32}},
            "fields": [
                {"field": "name", "box": {"x": 6, "y": 18, "w": 78, "h": 7}, "label_width": 14, "font_size": 11},
                {"field": "code", "box": {"x": 6, "y": 26, "w": 78, "h": 7}, "label_width": 14, "font_size": 10,
                 "font": "sans"},
                {"field": "scope", "box": {"x": 6, "y": 34, "w": 78, "h": 22}, "label_width": 14, "font_size": 10},
            ],
            "qr": {"box": {"x": 90, "y": 44, "w": 24, "h": 24}},
            "seal": {"box": {"x": 60, "y": 56, "w": 14, "h": 14}},
        },
    }
    return parse_model(LicenceTypeSpec, data)


INLINE_VALUES = {
    "name": f"陈{NON_BMP}华测试商行",
    "code": "AB 12 cd-34 Xy",
    "scope": "预包装食品销售；散装食品销售（含冷藏冷冻食品）；自制饮品制售；热食类食品制售",
}


def inline_layout(fonts: FontSet, values: dict[str, str] | None = None) -> PageLayout:
    spec = inline_spec()
    assert spec.template is not None
    face = sample_face(spec)
    face = LicenceFace(values or INLINE_VALUES, face.meta, face.qr_url, photo=face.photo)
    return build_layout(spec, spec.template, None, face, fonts)


@pytest.fixture(scope="module")
def pdf_fonts() -> FontSet:
    return FontSet.default()


@pytest.fixture(scope="module")
def cases(pdf_fonts: FontSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    directory = tmp_path_factory.mktemp("pdf")
    spec, food = food_layout(pdf_fonts)
    made = {}
    for name, layout, title in (("food", food, spec.name), ("inline", inline_layout(pdf_fonts), None)):
        pdf = render_pdf(layout, pdf_fonts, title=title, created=CREATED)
        path = directory / f"{name}.pdf"
        path.write_bytes(pdf)
        made[name] = Case(name, layout, pdf, path, title)
    return made


@pytest.fixture(params=["food", "inline"])
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return cases[request.param]


# -- helpers ---------------------------------------------------------------------------------------


def tool(name: str, *args: str | Path, text: bool = True) -> subprocess.CompletedProcess[Any]:
    result = subprocess.run(
        [require_tool_or_skip(name), *map(str, args)], capture_output=True, text=text, timeout=120
    )
    assert result.returncode == 0, f"{name} {args} exited {result.returncode}:\n{result.stderr}"
    return result


@cache
def pdf_page_image(path: Path) -> Image.Image:
    out = path.with_suffix("")
    tool("pdftoppm", "-r", str(DPI), "-png", "-singlefile", path, out)
    with Image.open(out.with_suffix(".png")) as image:
        return image.convert("RGB")


def same_size(a: Image.Image, b: Image.Image) -> tuple[Image.Image, Image.Image]:
    # poppler rounds the page up to whole pixels, Pillow to the nearest: compare the common area.
    w, h = min(a.width, b.width), min(a.height, b.height)
    assert abs(a.width - b.width) <= 1 and abs(a.height - b.height) <= 1
    return a.crop((0, 0, w, h)), b.crop((0, 0, w, h))


def ink_box(image: Image.Image, run: TextRun) -> tuple[int, int, int, int] | None:
    """Bounding box (page pixels) of pixels near the run's colour in the run's em box, widened by
    3 mm each side so that misplaced glyphs are seen rather than cropped."""
    left = round((run.x - 3) * PX)
    top = round((run.baseline - run.size_mm - 0.5) * PX)
    right = round((run.x + run.width + 3) * PX)
    bottom = round((run.baseline + 0.25 * run.size_mm + 0.5) * PX)
    region = image.crop((left, top, right, bottom))
    r, g, b = ImageChops.difference(region, Image.new("RGB", region.size, run.colour)).split()
    distance = ImageChops.lighter(ImageChops.lighter(r, g), b)
    # Closer to the run's colour than 40 % of the way to white: the glyph body, not its blended edge.
    threshold = 0.4 * max(255 - c for c in run.colour)
    box = distance.point(lambda v: 255 if v < threshold else 0).getbbox()
    if box is None:
        return None
    return box[0] + left, box[1] + top, box[2] + left, box[3] + top


@dataclass(frozen=True)
class Word:
    x_min: float  # mm
    y_min: float
    x_max: float
    y_max: float
    text: str


WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>')


def pdftotext_words(path: Path) -> list[Word]:
    output = tool("pdftotext", "-bbox-layout", path, "-").stdout
    words = []
    for match in WORD.finditer(output):
        x_min, y_min, x_max, y_max = (float(v) * PT_MM for v in match.groups()[:4])
        words.append(Word(x_min, y_min, x_max, y_max, html.unescape(match.group(5))))
    return words


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def embedded_fonts(pdf: bytes) -> dict[str, Any]:
    """Font resource name → the Type0 font dictionary, read with pyHanko."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    page = reader.root["/Pages"]["/Kids"][0]
    fonts = page["/Resources"]["/Font"]
    return {key: fonts[key] for key in fonts}  # indexing dereferences


def visible_runs(layout: PageLayout) -> list[TextRun]:
    return [run for run in layout.runs if squeeze(run.text)]


# -- structure ---------------------------------------------------------------------------------------


def test_qpdf_check_passes_without_warnings(case: Case) -> None:
    result = tool("qpdf", "--check", case.path)
    assert "No syntax or stream encoding errors found" in result.stdout
    assert "WARNING" not in result.stdout.upper() + result.stderr.upper()
    assert result.stderr == ""


def test_header_xref_and_trailer_are_well_formed(case: Case) -> None:
    pdf = case.pdf
    assert pdf.startswith(b"%PDF-1.7\n%")
    assert all(byte >= 128 for byte in pdf[10:14])  # the binary comment line
    assert pdf.endswith(b"%%EOF\n")
    startxref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[startxref:].startswith(b"xref\n0 ")
    size = int(pdf[startxref:].split(b"\n")[1].split()[1])
    table = pdf[startxref:].split(b"\n", 2)[2]
    for number in range(size):
        entry = table[number * 20 : (number + 1) * 20]
        assert len(entry) == 20 and entry.endswith(b" \n"), entry
        if number:
            offset = int(entry[:10])
            assert pdf[offset:].startswith(b"%d 0 obj" % number)


def test_pyhanko_reads_one_page_of_the_right_size(case: Case) -> None:
    reader = PdfFileReader(io.BytesIO(case.pdf), strict=True)
    assert reader.root["/Pages"]["/Count"] == 1
    page = reader.root["/Pages"]["/Kids"][0]
    media_box = [float(v) for v in page["/MediaBox"]]
    assert media_box[:2] == [0, 0]
    assert media_box[2] == pytest.approx(case.layout.width / PT_MM, abs=0.001)
    assert media_box[3] == pytest.approx(case.layout.height / PT_MM, abs=0.001)
    info = reader.trailer["/Info"]
    assert info["/Producer"] == "ECAS"
    assert ("/Title" in info) == (case.title is not None)
    if case.title is not None:
        assert info["/Title"] == case.title
    assert str(info["/CreationDate"]).startswith("D:20250301093000+08'00'")
    assert len(reader.trailer["/ID"]) == 2


def test_pyhanko_can_append_a_signature_field(case: Case, tmp_path: Path) -> None:
    """Sealing adds an incremental update: prove our xref and trailer carry one."""
    writer = IncrementalPdfFileWriter(io.BytesIO(case.pdf), strict=True)
    seal = case.layout.seal
    box = (
        round(seal.x / PT_MM),
        round((case.layout.height - seal.bottom) / PT_MM),
        round(seal.right / PT_MM),
        round((case.layout.height - seal.y) / PT_MM),
    )
    append_signature_field(writer, SigFieldSpec("Seal", box=box))
    out = tmp_path / "updated.pdf"
    with out.open("wb") as stream:
        writer.write(stream)
    assert out.read_bytes().startswith(case.pdf)
    assert "No syntax or stream encoding errors found" in tool("qpdf", "--check", out).stdout


# -- text ------------------------------------------------------------------------------------------


def test_pdftotext_finds_every_printed_value(case: Case) -> None:
    """-raw keeps content order, so a value wrapped over several lines reads back joined."""
    raw = squeeze(tool("pdftotext", "-raw", "-enc", "UTF-8", case.path, "-").stdout)
    printed = [v for v in case.layout.texts.values() if v]
    assert printed
    for value in printed:
        assert squeeze(value) in raw
    for run in visible_runs(case.layout):
        assert squeeze(run.text) in raw


def test_pdftotext_layout_shows_the_food_values(cases: dict[str, Case]) -> None:
    food = cases["food"]
    lines = tool("pdftotext", "-layout", "-enc", "UTF-8", food.path, "-").stdout.splitlines()
    assert any("演示市鼓楼区好味道餐饮有限公司" in line for line in lines)
    assert any("91350100M000100Y43" in line for line in lines)
    items = [run.text for run in food.layout.runs if run.text[:1] in "热包售" and run.x > 50]
    assert len(items) >= 2  # the long value wraps
    assert "".join(items) == food.layout.texts["business_items"]
    for item in items:
        assert any(item in line for line in lines), item


def test_characters_beyond_the_bmp_read_back(cases: dict[str, Case]) -> None:
    raw = tool("pdftotext", "-raw", "-enc", "UTF-8", cases["inline"].path, "-").stdout
    assert INLINE_VALUES["name"] in raw


def test_pdffonts_lists_embedded_cid_subsets(case: Case) -> None:
    lines = tool("pdffonts", case.path).stdout.splitlines()[2:]
    row = re.compile(r"^([A-Z]{6})\+(\S+)\s+CID Type 0C\s+Identity-H\s+yes\s+yes\s+yes\s+\d+\s+0$")
    matches = [row.match(line) for line in lines]
    assert all(matches), lines
    names = {m.group(2) for m in matches if m}
    used = {run.font for run in case.layout.runs}
    assert names == {FontSet.default().get(role).postscript_name for role in used}
    tags = [m.group(1) for m in matches if m]
    assert len(set(tags)) == len(tags)


def test_embedded_fonts_draw_every_character_with_the_original_outline(case: Case, pdf_fonts: FontSet) -> None:
    """Map each character to its CID through the original font's cmap (not our code), then find
    that CID's glyph in the embedded CFF and compare its outline bounds with the original."""
    by_name = {pdf_fonts.get(role).postscript_name: role for role in ("serif", "sans")}
    checked = set()
    for font in embedded_fonts(case.pdf).values():
        role = by_name[str(font["/BaseFont"]).split("+", 1)[1]]
        descendant = font["/DescendantFonts"][0]
        assert descendant["/Subtype"] == "/CIDFontType0"
        stream = descendant["/FontDescriptor"]["/FontFile3"]
        assert stream["/Subtype"] == "/CIDFontType0C"
        cff = CFFFontSet()
        cff.decompile(io.BytesIO(stream.data), None)
        top = cff[cff.fontNames[0]]
        assert top.ROS == ("Adobe", "Identity", 0)
        original_cmap, original_glyphs = original_font(str(pdf_fonts.get(role).path))
        for char in case.layout.characters(role):
            if char.isspace():
                continue
            name = original_cmap[ord(char)]
            assert name in top.CharStrings, f"{char!r} ({name}) missing from the embedded {role} font"
            assert glyph_bounds(top.CharStrings, name) == glyph_bounds(original_glyphs, name), char
            assert glyph_bounds(top.CharStrings, name) is not None, char
        checked.add(role)
    assert checked == {run.font for run in case.layout.runs}


def test_content_addresses_each_character_by_its_original_cid(case: Case, pdf_fonts: FontSet) -> None:
    """Every TJ draws, run by run, the CIDs the original font's cmap gives the characters
    (Identity-H: the code is the CID), whatever the subset did to glyph order."""
    reader = PdfFileReader(io.BytesIO(case.pdf), strict=True)
    content = reader.root["/Pages"]["/Kids"][0]["/Contents"].data.decode("latin-1")
    arrays = re.findall(r"Tm \[(.*?)\] TJ", content)
    assert len(arrays) == len(case.layout.runs)
    for run, array in zip(case.layout.runs, arrays, strict=True):
        cmap, _ = original_font(str(pdf_fonts.get(run.font).path))
        codes = [int(h[i : i + 4], 16) for h in re.findall(r"<([0-9A-F]*)>", array) for i in range(0, len(h), 4)]
        space = int(cmap[ord(" ")][3:])
        expected = [int(cmap[ord(c)][3:]) for c in run.text if not c.isspace()]
        assert [code for code in codes if code != space] == expected, run.text


def test_a_run_is_shown_the_same_from_any_subset_of_its_font(case: Case, pdf_fonts: FontSet) -> None:
    """The PDF keeps a run's shown text per run and font, not per subset (issue 24): sound only
    because a subset keeps the font's CIDs and widths, so any subset holding the run's characters
    shows it alike, letter spacing included. Checked against a much larger subset."""
    from templates import pdf

    extra = "永和九年岁在癸丑暮春之初会于会稽山阴之兰亭ABCxyz0123"
    for run in case.layout.runs:
        font = pdf_fonts.get(run.font)
        own = font.subset(case.layout.characters(run.font))
        larger = font.subset(case.layout.characters(run.font) | set(extra))
        assert own.cids != larger.cids
        assert pdf._glyphs(run, own) == pdf._glyphs(run, larger), run.text
        assert pdf._letter_spaced(run, own) == pdf._letter_spaced(run, larger), run.text


def test_pdf_dates_of_one_instant_in_two_zones_print_apart() -> None:
    from templates.pdf import pdf_date

    beijing = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert pdf_date(beijing) == b"D:20250301093000+08'00'"
    assert pdf_date(beijing.astimezone(dt.timezone.utc)) == b"D:20250301013000Z"
    assert pdf_date(beijing) == b"D:20250301093000+08'00'"


@cache
def original_font(path: str) -> tuple[dict[int, str], Any]:
    font = TTFont(path)
    return font.getBestCmap(), font["CFF "].cff.topDictIndex[0].CharStrings


def glyph_bounds(char_strings: Any, name: str) -> tuple[float, ...] | None:
    pen = BoundsPen(None)
    char_strings[name].draw(pen)
    return pen.bounds


# -- positions -------------------------------------------------------------------------------------


def test_pdftotext_word_boxes_match_the_layout(case: Case, pdf_fonts: FontSet) -> None:
    words = pdftotext_words(case.path)
    for run in visible_runs(case.layout):
        font = pdf_fonts.get(run.font)
        ascent = font.ascent / (font.ascent + font.descent)
        mine = sorted(
            (
                w
                for w in words
                if abs(w.y_max - w.y_min - run.size_mm) < 0.3
                and abs(w.y_min + ascent * (w.y_max - w.y_min) - run.baseline) < 1
                and w.x_min > run.x - 1
                and w.x_max < run.x + run.width + 1
            ),
            key=lambda w: w.x_min,
        )
        assert "".join(w.text for w in mine) == squeeze(run.text), run
        assert mine[0].x_min == pytest.approx(run.x, abs=1), run.text
        assert mine[-1].x_max == pytest.approx(run.x + run.width, abs=1), run.text


def test_ink_of_every_run_matches_the_png_renderer(case: Case, pdf_fonts: FontSet) -> None:
    png, pdf = same_size(render_image(case.layout, pdf_fonts, dpi=DPI), pdf_page_image(case.path))
    tolerance = PX  # 1 mm
    for run in visible_runs(case.layout):
        expected, actual = ink_box(png, run), ink_box(pdf, run)
        assert expected is not None and actual is not None, run.text
        assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
            run.text,
            expected,
            actual,
        )


def test_whole_page_looks_like_the_png_renderer(case: Case, pdf_fonts: FontSet) -> None:
    png, pdf = same_size(render_image(case.layout, pdf_fonts, dpi=DPI), pdf_page_image(case.path))
    # Pixel by pixel only antialiasing differs; averaged over 1 mm cells, nearly nothing.
    assert ImageStat.Stat(ImageChops.difference(png, pdf).convert("L")).mean[0] < 5
    cells = (png.width // 6, png.height // 6)

    def coarse(image: Image.Image) -> Image.Image:
        return image.convert("L").resize(cells, Image.Resampling.BOX)

    assert ImageStat.Stat(ImageChops.difference(coarse(png), coarse(pdf))).mean[0] < 2


def test_photo_is_drawn_in_its_box(cases: dict[str, Case], pdf_fonts: FontSet) -> None:
    case = cases["inline"]
    (placed,) = case.layout.images
    png, pdf = same_size(render_image(case.layout, pdf_fonts, dpi=DPI), pdf_page_image(case.path))
    inset = placed.box  # half a millimetre in from each edge: resampling differs at the border
    box = (
        round((inset.x + 0.5) * PX),
        round((inset.y + 0.5) * PX),
        round((inset.right - 0.5) * PX),
        round((inset.bottom - 0.5) * PX),
    )
    difference = ImageChops.difference(png.crop(box), pdf.crop(box)).convert("L")
    assert ImageStat.Stat(difference).mean[0] < 3
    # and it is not blank: the sample silhouette differs from a white page
    assert ImageStat.Stat(pdf.crop(box).convert("L")).mean[0] < 240


def test_zbarimg_decodes_the_qr_from_the_pdf(case: Case) -> None:
    result = tool("zbarimg", "--raw", "-q", pdf_page_image_path(case.path))
    assert result.stdout.strip() == case.layout.qr.text


def pdf_page_image_path(path: Path) -> Path:
    pdf_page_image(path)
    return path.with_suffix(".png")


# -- determinism, errors, cost ----------------------------------------------------------------------


def test_same_layout_and_time_give_the_same_bytes(cases: dict[str, Case], pdf_fonts: FontSet) -> None:
    case = cases["food"]
    assert render_pdf(case.layout, pdf_fonts, title=case.title, created=CREATED) == case.pdf
    later = render_pdf(case.layout, pdf_fonts, title=case.title, created=CREATED + dt.timedelta(days=1))
    assert later != case.pdf and len(later) == len(case.pdf)


def test_another_process_writes_the_same_bytes(cases: dict[str, Case]) -> None:
    """Subsetting and the writer keep no per-process state: every worker issues identical files."""
    case = cases["inline"]
    script = (
        "import pickle, sys\n"
        "from templates.fonts import FontSet\n"
        "from templates.pdf import render_pdf\n"
        "layout, created = pickle.loads(sys.stdin.buffer.read())\n"
        "sys.stdout.buffer.write(render_pdf(layout, FontSet.default(), created=created))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps((case.layout, CREATED)),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == case.pdf


MISSING = "\u0e01"  # ก: Thai, not in Noto SC


def test_a_character_the_font_lacks_is_a_font_error_naming_it(pdf_fonts: FontSet) -> None:
    with pytest.raises(FontError, match=MISSING):
        inline_layout(pdf_fonts, {**INLINE_VALUES, "name": f"测试{MISSING}商行"})


def test_render_pdf_refuses_a_layout_with_a_missing_character(pdf_fonts: FontSet) -> None:
    layout = inline_layout(pdf_fonts)
    run = layout.runs[-1]
    bad = TextRun(MISSING + run.text, run.x, run.baseline, run.size, run.font, run.colour, (1.0, *run.advances))
    with pytest.raises(FontError, match=MISSING):
        render_pdf(PageLayout(layout.width, layout.height, None, (bad,), (), layout.qr, layout.seal), pdf_fonts)

"""OFD rendering, checked with code we did not write: zipfile and an XML parser read the package,
fontTools reads the embedded fonts (no tofu), easyofd (an independent OFD reader, when installed)
reads the text back, and ofdrw's files show the part names and conventions to match. Positions are
compared with the layout and, by drawing the OFD's own objects, with the PNG renderer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from templates.backgrounds import prepare_background
from templates.fonts import FontSet
from templates.layout import LicenceFace, PageLayout, build_layout, sample_face
from templates.ofd import render_ofd
from templates.png import render_image
from templates.spec import LicenceTypeSpec, parse_model
from tests.conftest import ofd_vector
from tests.templates.template_examples import example_data, example_spec

NS = "http://www.ofdspec.org/2016"
Q = f"{{{NS}}}"
CREATED = dt.date(2025, 3, 1)
DOC_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SPECIAL = "<&>\"'"
NON_BMP = "\U0001f210"  # 🈐, beyond the BMP, in Noto SC
USCC = "11350100MB00000100"


# -- cases: the shipped food licence, the photo licence, and an inline card without background ---


@dataclass(frozen=True)
class Case:
    name: str
    layout: PageLayout
    ofd: bytes
    values: dict[str, str]  # face values that must come back as printed


def food_case(fonts: FontSet) -> Case:
    """The food licence, with XML-special characters in the operator's name."""
    data = example_data("food-business-licence")
    operator = next(f for f in data["fields"] if f["key"] == "operator_name")
    operator["example"] = f"演示市鼓楼区{SPECIAL}好味道餐饮有限公司"
    spec = parse_model(LicenceTypeSpec, data)
    return _case("food", spec, fonts, title=spec.name)


def photo_case(fonts: FontSet) -> Case:
    return _case("photo", example_spec("vocational-qualification"), fonts)


def _case(name: str, spec: LicenceTypeSpec, fonts: FontSet, title: str | None = None) -> Case:
    assert spec.template is not None
    face = sample_face(spec)
    layout = build_layout(spec, spec.template, prepare_background(spec.template, {}), face, fonts)
    ofd = render_ofd(layout, fonts, doc_id=DOC_ID, created=CREATED, title=title)
    return Case(name, layout, ofd, {key: printed for key, printed in layout.texts.items() if printed})


INLINE_VALUES = {
    "name": f"陈{NON_BMP}华{SPECIAL}商行",
    "code": "AB 12 cd-34\u3000Xy",  # an ideographic space: a blank glyph of its own
    "scope": "预包装食品销售；散装食品销售（含冷藏冷冻食品）；自制饮品制售；热食类食品制售",
}


def inline_case(fonts: FontSet) -> Case:
    """A card with a photo and no background: no picture for the page, one for the photo."""
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
    spec = parse_model(LicenceTypeSpec, data)
    assert spec.template is not None
    sample = sample_face(spec)
    face = LicenceFace(INLINE_VALUES, sample.meta, sample.qr_url, photo=sample.photo)
    layout = build_layout(spec, spec.template, None, face, fonts)
    ofd = render_ofd(layout, fonts, doc_id=DOC_ID, created=CREATED, title=None)
    printed = {"name": INLINE_VALUES["name"], "code": INLINE_VALUES["code"]}
    return Case("inline", layout, ofd, printed)


@pytest.fixture(scope="module")
def cases(fonts: FontSet) -> dict[str, Case]:
    return {case.name: case for case in (food_case(fonts), photo_case(fonts), inline_case(fonts))}


@pytest.fixture(params=["food", "photo", "inline"])
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return cases[request.param]


# -- reading a package the way the standard says, with zipfile and ElementTree -------------------


class Package:
    def __init__(self, data: bytes) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.names = self.zip.namelist()

    def read(self, name: str) -> bytes:
        assert name in self.names, f"{name} is referenced but not in the package {self.names}"
        return self.zip.read(name)

    def xml(self, name: str) -> ET.Element:
        return ET.fromstring(self.read(name))  # noqa: S314 - our own output

    def document(self) -> str:
        return resolve("OFD.xml", text(self.xml("OFD.xml"), "DocBody/DocRoot"))

    def page(self) -> str:
        document = self.document()
        page = self.xml(document).find(f"{Q}Pages/{Q}Page")
        assert page is not None
        return resolve(document, page.attrib["BaseLoc"])

    def content(self) -> ET.Element:
        return self.xml(self.page())

    def resources(self) -> dict[str, tuple[str, str]]:
        """ID → (kind, part) of every font and multimedia file the resource lists point to."""
        document = self.document()
        common = self.xml(document).find(f"{Q}CommonData")
        assert common is not None
        found: dict[str, tuple[str, str]] = {}
        for tag in ("PublicRes", "DocumentRes"):
            for res_loc in common.findall(Q + tag):
                res_name = resolve(document, str(res_loc.text))
                res = self.xml(res_name)
                base = resolve(res_name, res.attrib.get("BaseLoc", ".")) + "/"
                for font in res.iter(Q + "Font"):
                    found[font.attrib["ID"]] = ("font", resolve(base, text(font, "FontFile")))
                for media in res.iter(Q + "MultiMedia"):
                    found[media.attrib["ID"]] = ("image", resolve(base, text(media, "MediaFile")))
        return found

    def font(self, font_id: str) -> TTFont:
        kind, part = self.resources()[font_id]
        assert kind == "font"
        return TTFont(io.BytesIO(self.read(part)))


def text(element: ET.Element, path: str) -> str:
    found = element.find("/".join(Q + step for step in path.split("/")))
    assert found is not None and found.text is not None, path
    return found.text


def resolve(base_part: str, loc: str) -> str:
    """ST_Loc: absolute from the package root, or relative to the referring part's folder."""
    if loc.startswith("/"):
        return loc[1:]
    folder = base_part if base_part.endswith("/") else posixpath.dirname(base_part)
    return posixpath.normpath(posixpath.join(folder, loc))


def flat(rects: list[tuple[float, float, float, float]]) -> list[float]:
    return [v for rect in rects for v in rect]


def numbers(value: str) -> list[float]:
    return [float(v) for v in value.split()]


def deltas(value: str | None) -> list[float]:
    """DeltaX with its "g count value" repeats expanded (GB/T 33190 11.3)."""
    tokens = (value or "").split()
    out: list[float] = []
    index = 0
    while index < len(tokens):
        if tokens[index] == "g":
            out += [float(tokens[index + 2])] * int(tokens[index + 1])
            index += 3
        else:
            out.append(float(tokens[index]))
            index += 1
    return out


def text_objects(package: Package) -> list[ET.Element]:
    return list(package.content().iter(Q + "TextObject"))


def rectangles(data: str, origin: tuple[float, float]) -> list[tuple[float, float, float, float]]:
    """Rectangles of "M x y L x y L x y L x y C" subpaths, in page mm."""
    found = []
    for match in re.finditer(r"M ([\d.]+) ([\d.]+) L ([\d.]+) \2 L \3 ([\d.]+) L \1 \4 C", data):
        x0, y0, x1, y1 = (float(v) for v in match.groups())
        found.append((origin[0] + x0, origin[1] + y0, x1 - x0, y1 - y0))
    assert len(found) == data.count("M"), "AbbreviatedData holds something other than rectangles"
    return found


# -- the package ----------------------------------------------------------------------------------


def test_package_is_a_valid_zip_of_well_formed_xml(case: Case) -> None:
    package = Package(case.ofd)
    assert package.zip.testzip() is None
    assert package.names[0] == "OFD.xml"
    assert len(set(package.names)) == len(package.names)
    for name in package.names:
        if name.endswith(".xml"):
            root = package.xml(name)
            assert root.tag.startswith(Q), f"{name}: root {root.tag} not in the OFD namespace"
            assert package.read(name).startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_every_reference_resolves(case: Case) -> None:
    package = Package(case.ofd)
    ofd = package.xml("OFD.xml")
    assert ofd.attrib == {"Version": "1.0", "DocType": "OFD"}
    assert package.document() == "Doc_0/Document.xml"
    assert package.page() == "Doc_0/Pages/Page_0/Content.xml"
    resources = package.resources()  # reads every resource list and checks each file is there
    for _, part in resources.values():
        package.read(part)
    content = package.content()
    for image in content.iter(Q + "ImageObject"):
        assert resources[image.attrib["ResourceID"]][0] == "image"
    for obj in content.iter(Q + "TextObject"):
        assert resources[obj.attrib["Font"]][0] == "font"
    used = {e.attrib.get("ResourceID") or e.attrib.get("Font") for e in content.iter()} - {None}
    assert used == set(resources), "every listed resource is used and every used one listed"
    listed = {part for _, part in resources.values()}
    assert {n for n in package.names if n.startswith("Doc_0/Res/")} == listed


def test_ids_are_unique_and_below_max_unit_id(case: Case) -> None:
    package = Package(case.ofd)
    ids: list[int] = []
    for name in package.names:
        if name.endswith(".xml"):
            ids += [int(e.attrib["ID"]) for e in package.xml(name).iter() if "ID" in e.attrib]
    assert len(ids) == len(set(ids)), "IDs must be unique in the document"
    max_unit_id = int(text(package.xml(package.document()), "CommonData/MaxUnitID"))
    assert max_unit_id == max(ids)
    assert min(ids) >= 1


def test_page_area_and_pictures(case: Case) -> None:
    package = Package(case.ofd)
    layout = case.layout
    box = text(package.xml(package.document()), "CommonData/PageArea/PhysicalBox")
    assert numbers(box) == pytest.approx([0, 0, layout.width, layout.height])
    images = list(package.content().iter(Q + "ImageObject"))
    expected = [(0.0, 0.0, layout.width, layout.height)] if layout.background is not None else []
    expected += [(p.box.x, p.box.y, p.box.w, p.box.h) for p in layout.images]
    assert len(images) == len(expected) == {"food": 1, "photo": 2, "inline": 1}[case.name]
    resources = package.resources()
    pictures = ([layout.background] if layout.background is not None else []) + [p.picture for p in layout.images]
    for image, (x, y, w, h), picture in zip(images, expected, pictures, strict=True):
        assert numbers(image.attrib["Boundary"]) == pytest.approx([x, y, w, h], abs=1e-3)
        assert numbers(image.attrib["CTM"]) == pytest.approx([w, 0, 0, h, 0, 0], abs=1e-3)
        assert package.read(resources[image.attrib["ResourceID"]][1]) == picture.data


def test_qr_code_paths(case: Case) -> None:
    package = Package(case.ofd)
    paths = list(package.content().iter(Q + "PathObject"))
    assert len(paths) == 2
    qr = case.layout.qr
    for path, colour in zip(paths, ("255 255 255", "0 0 0"), strict=True):
        assert path.attrib["Fill"] == "true" and path.attrib["Stroke"] == "false"
        fill = path.find(Q + "FillColor")
        assert fill is not None and fill.attrib["Value"] == colour
        assert numbers(path.attrib["Boundary"]) == pytest.approx([qr.box.x, qr.box.y, qr.box.w, qr.box.h])
    origin = (qr.box.x, qr.box.y)
    white = rectangles(text(paths[0], "AbbreviatedData"), origin)
    assert flat(white) == pytest.approx([*origin, qr.box.w, qr.box.h])
    dark = rectangles(text(paths[1], "AbbreviatedData"), origin)
    assert len(dark) == len(qr.dark_rectangles())
    assert flat(dark) == pytest.approx(flat(qr.dark_rectangles()), abs=1e-3)


# -- text ------------------------------------------------------------------------------------------


def test_embedded_fonts_draw_every_character(case: Case) -> None:
    """Every character of every TextCode maps to a real glyph of the font the object names."""
    package = Package(case.ofd)
    checked = 0
    for obj in text_objects(package):
        font = package.font(obj.attrib["Font"])
        cmap = font.getBestCmap()
        glyphs = font.getGlyphSet()
        for char in text(obj, "TextCode"):
            assert ord(char) in cmap, f"U+{ord(char):04X} {char!r} has no glyph in font {obj.attrib['Font']}"
            if not char.isspace():
                pen = BoundsPen(glyphs)
                glyphs[cmap[ord(char)]].draw(pen)
                assert pen.bounds is not None, f"{char!r} maps to an empty glyph"
            checked += 1
    assert checked == sum(len(run.text) for run in case.layout.runs)


def test_font_resources_name_the_fonts(case: Case, fonts: FontSet) -> None:
    package = Package(case.ofd)
    names = {font.attrib["FontName"]: font.attrib["FamilyName"] for font in package.xml(
        "Doc_0/PublicRes.xml").iter(Q + "Font")}
    roles = {run.font for run in case.layout.runs}
    assert set(names) == {fonts.get(role).postscript_name for role in roles}
    assert all(family.startswith("Noto") for family in names.values())


def test_text_objects_sit_where_the_layout_put_the_runs(case: Case) -> None:
    """TextCode starts at the run's x and baseline; DeltaX steps by the run's advances."""
    objects = text_objects(Package(case.ofd))
    assert len(objects) == len(case.layout.runs)
    for obj, run in zip(objects, case.layout.runs, strict=True):
        left, top, width, height = numbers(obj.attrib["Boundary"])
        code = obj.find(Q + "TextCode")
        assert code is not None
        x, y = left + float(code.attrib["X"]), top + float(code.attrib["Y"])
        assert (x, y) == pytest.approx((run.x, run.baseline), abs=1e-3), run.text
        steps = deltas(code.attrib.get("DeltaX"))
        assert len(steps) == len(run.text) - 1
        assert steps == pytest.approx(list(run.advances[:-1]), abs=1e-3)
        assert sum(steps) + run.advances[-1] == pytest.approx(run.width, abs=0.01)
        assert float(obj.attrib["Size"]) == pytest.approx(run.size_mm, abs=1e-3)  # OFD sizes are mm
        colour = obj.find(Q + "FillColor")
        assert colour is not None and colour.attrib["Value"] == " ".join(map(str, run.colour))
        # The Boundary clips: it holds the whole em box of every glyph.
        assert left <= run.x and left + width >= run.x + run.width
        assert top <= run.baseline - 0.88 * run.size_mm and top + height >= run.baseline + 0.12 * run.size_mm


def test_text_round_trip(case: Case) -> None:
    """Face values come back exactly, XML-special characters included."""
    package = Package(case.ofd)
    page_text = "".join(text(obj, "TextCode") for obj in text_objects(package))
    for key, value in case.values.items():
        # A wrapped value loses the spaces at its line breaks, nothing else.
        assert value in page_text or value.replace(" ", "") in page_text.replace(" ", ""), key
    runs = [text(obj, "TextCode") for obj in text_objects(package)]
    assert runs == [run.text for run in case.layout.runs]
    if case.name != "photo":
        assert SPECIAL in page_text
        raw = package.read(package.page())
        assert b"&lt;&amp;&gt;" in raw


# -- compared with the PNG renderer: the OFD's own objects drawn with Pillow ----------------------


def rasterise(data: bytes, dpi: float) -> Image.Image:
    """Draw the OFD page from its XML alone (fonts from the package), as the PNG renderer draws."""
    package = Package(data)
    px = dpi / 25.4
    width, height = numbers(text(package.xml(package.document()), "CommonData/PageArea/PhysicalBox"))[2:]
    page = Image.new("RGB", (round(width * px), round(height * px)), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    resources = package.resources()
    for obj in package.content().find(f"{Q}Content/{Q}Layer") or []:
        x, y, w, h = numbers(obj.attrib["Boundary"])
        tag = obj.tag.removeprefix(Q)
        if tag == "ImageObject":
            _draw_image(page, package.read(resources[obj.attrib["ResourceID"]][1]), (x, y, w, h), px)
        elif tag == "TextObject":
            font_file = package.read(resources[obj.attrib["Font"]][1])
            _draw_text(draw, obj, font_file, (x, y), px)
        elif tag == "PathObject":
            colour = tuple(int(v) for v in obj.find(Q + "FillColor").attrib["Value"].split())  # type: ignore[union-attr]
            for rect in rectangles(text(obj, "AbbreviatedData"), (x, y)):
                draw.rectangle(_pixels(rect, px), fill=colour)
    return page


def _pixels(rect: tuple[float, float, float, float], px: float) -> tuple[int, int, int, int]:
    x, y, w, h = rect
    return round(x * px), round(y * px), round((x + w) * px) - 1, round((y + h) * px) - 1


def _draw_image(page: Image.Image, jpeg: bytes, box: tuple[float, float, float, float], px: float) -> None:
    left, top, right, bottom = _pixels(box, px)
    with Image.open(io.BytesIO(jpeg)) as picture:
        page.paste(picture.convert("RGB").resize((right - left + 1, bottom - top + 1), Image.Resampling.LANCZOS),
                   (left, top))


def _draw_text(draw: ImageDraw.ImageDraw, obj: ET.Element, font_file: bytes, origin: tuple[float, float],
               px: float) -> None:
    size = float(obj.attrib["Size"])
    font = ImageFont.truetype(io.BytesIO(font_file), size=round(size * px * 4) / 4)
    colour = tuple(int(v) for v in obj.find(Q + "FillColor").attrib["Value"].split())  # type: ignore[union-attr]
    for code in obj.iter(Q + "TextCode"):
        x, y = origin[0] + float(code.attrib["X"]), origin[1] + float(code.attrib["Y"])
        steps = [*deltas(code.attrib.get("DeltaX")), 0.0]
        for char, step in zip(code.text or "", steps, strict=True):
            if not char.isspace():
                draw.text((x * px, y * px), char, font=font, fill=colour, anchor="ls")
            x += step


DPI = 100  # 0.25 mm a pixel: a 1 mm shift moves a glyph 4 pixels


def differing_pixels(ours: Image.Image, theirs: Image.Image) -> int:
    """Pixels that differ strongly even when our image may move by one pixel: rounding positions to
    0.001 mm can flip a glyph or QR edge to the next pixel, which is not a disagreement."""
    assert ours.size == theirs.size
    best = None
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            difference = ImageChops.difference(ImageChops.offset(ours, dx, dy), theirs).convert("L")
            best = difference if best is None else ImageChops.darker(best, difference)
    assert best is not None
    return sum(best.crop((1, 1, best.width - 1, best.height - 1)).histogram()[64:])


def test_ofd_drawn_matches_the_png_renderer(case: Case, fonts: FontSet) -> None:
    ours, theirs = rasterise(case.ofd, DPI), render_image(case.layout, fonts, DPI)
    mean = ImageStat.Stat(ImageChops.difference(ours, theirs).convert("L")).mean[0]
    assert mean < 0.1
    assert differing_pixels(ours, theirs) < 5


def test_a_run_moved_by_1_mm_would_be_caught(cases: dict[str, Case], fonts: FontSet) -> None:
    """The comparison above is sharp enough: moving the shortest run by 1 mm shows."""
    case = cases["inline"]
    runs = list(case.layout.runs)
    index = min(range(len(runs)), key=lambda i: len(runs[i].text.strip()))
    for dx, dy in ((1, 0), (0, 1)):
        moved = dataclasses.replace(runs[index], x=runs[index].x + dx, baseline=runs[index].baseline + dy)
        layout = dataclasses.replace(case.layout, runs=(*runs[:index], moved, *runs[index + 1 :]))
        assert differing_pixels(rasterise(case.ofd, DPI), render_image(layout, fonts, DPI)) > 20


# -- like ofdrw's files ----------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("vector", ["allprotected.ofd", "DigitalSign.ofd"])
def test_structure_matches_ofdrw(vector: str, cases: dict[str, Case]) -> None:
    ours, theirs = Package(cases["food"].ofd), Package(ofd_vector(vector).read_bytes())
    shared = {"OFD.xml", "Doc_0/Document.xml", "Doc_0/PublicRes.xml", "Doc_0/Pages/Page_0/Content.xml"}
    assert shared <= set(ours.names) and shared <= set(theirs.names)
    for name in shared:
        assert ours.xml(name).tag == theirs.xml(name).tag, name
    # DocInfo: ofdrw's elements appear in ours, in the same order.
    their_info = [e.tag for e in theirs.xml("OFD.xml").iter() if e.tag.startswith(Q)]
    our_info = [e.tag for e in ours.xml("OFD.xml").iter() if e.tag.startswith(Q)]
    assert [t for t in our_info if t in their_info] == [t for t in their_info if t in our_info]
    assert set(their_info) - set(our_info) == {Q + "Signatures"}  # added when sealed
    assert ours.document() == theirs.document() and ours.page() == theirs.page()
    # The attributes ofdrw puts on a text object and its TextCode, we put too.
    our_text, their_text = text_objects(ours)[0], text_objects(theirs)[0]
    assert set(their_text.attrib) <= set(our_text.attrib)
    assert set(their_text.find(Q + "TextCode").attrib) <= set(our_text.find(Q + "TextCode").attrib)  # type: ignore[union-attr]
    assert theirs.xml("Doc_0/PublicRes.xml").attrib == ours.xml("Doc_0/PublicRes.xml").attrib == {"BaseLoc": "Res"}


# -- determinism and metadata ----------------------------------------------------------------------


def test_same_input_same_bytes(cases: dict[str, Case], fonts: FontSet) -> None:
    layout = cases["food"].layout
    first = render_ofd(layout, fonts, doc_id=DOC_ID, created=CREATED, title="食品经营许可证")
    assert first == cases["food"].ofd
    assert render_ofd(layout, fonts, doc_id=DOC_ID, created=CREATED, title="食品经营许可证") == first
    other = render_ofd(layout, fonts, doc_id=DOC_ID, created=dt.date(2025, 3, 2), title="食品经营许可证")
    assert other != first
    assert all(info.date_time == (2025, 3, 1, 0, 0, 0) for info in Package(first).zip.infolist())


def test_doc_info(cases: dict[str, Case], fonts: FontSet) -> None:
    info = Package(cases["food"].ofd).xml("OFD.xml").find(f"{Q}DocBody/{Q}DocInfo")
    assert info is not None
    assert [e.tag.removeprefix(Q) for e in info] == ["DocID", "Title", "CreationDate", "Creator", "CreatorVersion"]
    assert text(info, "DocID") == DOC_ID and text(info, "Title") == "食品经营许可证"
    assert text(info, "CreationDate") == "2025-03-01" and text(info, "Creator") == "ECAS"
    fresh = Package(render_ofd(cases["inline"].layout, fonts, title=f"标题{SPECIAL}\x0b")).xml("OFD.xml")
    assert re.fullmatch("[0-9a-f]{32}", text(fresh, "DocBody/DocInfo/DocID"))
    assert text(fresh, "DocBody/DocInfo/Title") == f"标题{SPECIAL}"
    assert text(fresh, "DocBody/DocInfo/CreationDate") == dt.date.today().isoformat()
    no_title = Package(cases["inline"].ofd).xml("OFD.xml")
    assert no_title.find(f"{Q}DocBody/{Q}DocInfo/{Q}Title") is None


# -- an independent reader -------------------------------------------------------------------------


def test_easyofd_reads_our_text(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """easyofd (Python, not ours) parses the package: text, positions, fonts and pictures."""
    easyofd = pytest.importorskip("easyofd")
    monkeypatch.chdir(tmp_path)  # it unpacks into the working directory
    reader = easyofd.OFD()
    reader.read(case.ofd, fmt="binary")
    document = reader.data[0]
    assert document["default_page_size"] == pytest.approx([0, 0, case.layout.width, case.layout.height])
    cells = document["page_info"][0]["text_list"]
    assert [cell["text"] for cell in cells] == [run.text for run in case.layout.runs]
    for cell, run in zip(cells, case.layout.runs, strict=True):
        assert cell["pos"][0] + float(cell["X"]) == pytest.approx(run.x, abs=1e-3)
        assert cell["pos"][1] + float(cell["Y"]) == pytest.approx(run.baseline, abs=1e-3)
        assert cell["size"] == pytest.approx(run.size_mm, abs=1e-3)
        assert document["fonts"][cell["font"]]["font_b64"]
    assert len(document["images"]) == len(case.layout.images) + (case.layout.background is not None)

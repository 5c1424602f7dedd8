"""The reuse receipt (材料复用清单): one A4 page listing every material a case needed, each with the
licence reused for it (identifier, version, SM3 of its sealed PDF, basis, time) or "申请人提交",
sealed with the authority's service key like an annotated copy. `ecas verify` recognises it by the
SM3 the case keeps (`checking.licences`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cert_authority.timeutil import BEIJING
from keys.signer import Signer
from seals.box import SealBox
from seals.licence_files import seal_page_pdf
from templates.fonts import FontSet
from templates.layout import PT_MM, BlockStyle, PageLayout, TextRun, make_qr, text_block
from templates.layout_spec import Box

BASIS_TEXT = {
    "duty_rule": "依职责用证（本部门的依职责用证规则）",
    "use_code": "持证人同意（用证码）",
    "show_token": "持证人同意（亮证码）",
    "authorisation": "持证人同意（授权用证）",
}
PAGE_W, PAGE_H = 210.0, 297.0
LEFT, WIDTH = 20.0, 170.0
MATERIALS_TOP, MATERIALS_BOTTOM = 86.0, 238.0
SEAL_BOX = Box(x=158, y=246, w=32, h=32)
QR_BOX = Box(x=124, y=249, w=26, h=26)


@dataclass(frozen=True)
class ReceiptLine:
    name: str  # the material
    licence_name: str | None = None  # the rest only for a reused licence
    identifier: str | None = None
    version: int | None = None
    licence_sm3: str | None = None
    basis: str | None = None
    reused_at: dt.datetime | None = None

    @property
    def reused(self) -> bool:
        return self.identifier is not None


@dataclass(frozen=True)
class ReceiptContent:
    case_id: int
    matter_code: str
    matter_name: str
    department_name: str
    department_uscc: str
    applicant: str  # masked
    case_number: str | None
    opened_at: dt.datetime
    closed_at: dt.datetime
    lines: tuple[ReceiptLine, ...]
    authority_name: str
    url: str  # in the QR code: where a department fetches the original


# Place a text block: text, x, y, w, h (mm), style, what it is (for error messages).
Place = Callable[[str, float, float, float, float, BlockStyle, str], None]


def _time(at: dt.datetime) -> str:
    return f"{at.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}"


def receipt_layout(content: ReceiptContent, fonts: FontSet) -> PageLayout:
    runs: list[TextRun] = []

    def block(text: str, x: float, y: float, w: float, h: float, style: BlockStyle, where: str) -> None:
        runs.extend(text_block(text, Box(x=x, y=y, w=w, h=h), fonts, style, where))

    head, heading, foot = _constant_parts(content.authority_name, fonts)
    runs.extend(head)
    info = BlockStyle(font_size=10.5, min_font_size=6)
    rows = (
        f"办件编号：{content.case_id}　　部门办件号：{content.case_number or '—'}",
        f"办理事项：{content.matter_name}（{content.matter_code}）",
        f"办理部门：{content.department_name}（{content.department_uscc}）",
        f"申请人：{content.applicant}",
        f"受理时间：{_time(content.opened_at)}　　办结时间：{_time(content.closed_at)}",
    )
    for index, text in enumerate(rows):
        block(text, LEFT, 39 + index * 7, WIDTH, 7, info, "办件信息")
    runs.extend(heading)
    _materials(content.lines, block)
    reused = sum(1 for line in content.lines if line.reused)
    summary = (
        f"所需材料 {len(content.lines)} 项：复用电子证照 {reused} 项，申请人提交 {len(content.lines) - reused} 项。"
    )
    block(summary, LEFT, 242, 100, 10, BlockStyle(font_size=10.5, font="sans", min_font_size=7), "合计")
    runs.extend(foot)
    return PageLayout(
        width=PAGE_W,
        height=PAGE_H,
        background=None,
        runs=tuple(runs),
        images=(),
        qr=make_qr(content.url, QR_BOX),
        seal=SEAL_BOX,
    )


Runs = tuple[TextRun, ...]
# The parts every receipt of an authority has (title, subtitle, heading, footer), laid out once per
# process and authority name: fitting text into its box is most of laying a receipt out.
_CONSTANT_PARTS: dict[tuple[str, int], tuple[FontSet, tuple[Runs, Runs, Runs]]] = {}


def _constant_parts(authority_name: str, fonts: FontSet) -> tuple[Runs, Runs, Runs]:
    """The runs above the case's details, of the materials' heading, and of the footer."""
    key = (authority_name, id(fonts))
    found = _CONSTANT_PARTS.get(key)
    if found is not None and found[0] is fonts:
        return found[1]

    def block(text: str, x: float, y: float, w: float, h: float, style: BlockStyle, where: str) -> Runs:
        return tuple(text_block(text, Box(x=x, y=y, w=w, h=h), fonts, style, where))

    head = block(
        "材料复用清单", LEFT, 14, WIDTH, 13, BlockStyle(font_size=24, align="center", letter_spacing=2), "标题"
    ) + block(
        f"{authority_name}出具 · 已进库证照免于重复提交的凭证",
        LEFT,
        28,
        WIDTH,
        6,
        BlockStyle(font_size=9, font="sans", align="center", colour="#555555"),
        "副标题",
    )
    heading = block("所需材料", LEFT, 76, WIDTH, 8, BlockStyle(font_size=12, font="sans"), "小标题")
    footer = (
        f"本清单由{authority_name}加盖电子印章，可用 ecas verify 或 /api/v1/verify 核验；"
        "二维码为本清单原件的取回地址（须办理部门的 API 密钥）。"
    )
    foot = block(
        footer, LEFT, 255, 100, 22, BlockStyle(font_size=8, font="sans", colour="#555555", min_font_size=6), "说明"
    )
    if len(_CONSTANT_PARTS) > 16:
        _CONSTANT_PARTS.clear()  # a bound, not an eviction policy: one authority name in practice
    _CONSTANT_PARTS[key] = (fonts, (head, heading, foot))
    return head, heading, foot


def _materials(lines: tuple[ReceiptLine, ...], place: Place) -> None:
    """Each material: its name, then what met it; everything shrinks together if there are many."""
    heading, detail = 10.5, 8.5
    heights = [_height(line, heading, detail) for line in lines]
    scale = min(1.0, (MATERIALS_BOTTOM - MATERIALS_TOP) / max(sum(heights), 1e-6))
    y = MATERIALS_TOP
    for index, (line, height) in enumerate(zip(lines, heights, strict=True)):
        head_h = heading * PT_MM * 1.6 * scale
        place(
            f"{index + 1}. {line.name}",
            LEFT,
            y,
            WIDTH,
            head_h,
            BlockStyle(font_size=max(heading * scale, 4), font="sans", min_font_size=4),
            "材料名称",
        )
        if line.reused:
            text = (
                f"复用电子证照：{line.licence_name}（第 {line.version} 版）\n"
                f"证照标识：{line.identifier}\n"
                f"盖章文件 SM3：{line.licence_sm3}\n"
                f"用证依据：{BASIS_TEXT.get(line.basis or '', line.basis)}；"
                f"复用时间：{_time(line.reused_at) if line.reused_at else '—'}"
            )
            colour = "#1A1A1A"
        else:
            text, colour = "申请人提交", "#8A4B00"
        place(
            text,
            LEFT + 6,
            y + head_h,
            WIDTH - 6,
            (height * scale) - head_h,
            BlockStyle(font_size=max(detail * scale, 4), colour=colour, min_font_size=4),
            "材料说明",
        )
        y += height * scale


def _height(line: ReceiptLine, heading: float, detail: float) -> float:
    detail_lines = 4 if line.reused else 1
    return heading * PT_MM * 1.6 + detail * PT_MM * (1.35 * detail_lines + 0.6) + 2


def render_receipt(
    content: ReceiptContent,
    fonts: FontSet,
    signer: Signer,
    seal_picture: bytes,
    now: dt.datetime,
    stamper: tuple[Callable[[bytes], bytes | None], int] | None = None,
) -> bytes:
    """The receipt as a PDF sealed with `signer` (the authority's service key), with a timestamp
    over the seal from `stamper` (the TSA's `document_stamper`)."""
    timestamper, room = stamper if stamper is not None else (None, 0)
    layout = receipt_layout(content, fonts)
    box = SealBox(x=SEAL_BOX.x, y=SEAL_BOX.y, w=SEAL_BOX.w, h=SEAL_BOX.h)
    return seal_page_pdf(
        layout,
        fonts,
        signer,
        seal_picture,
        box,
        now,
        title=f"材料复用清单（办件 {content.case_id}）",
        reason=f"材料复用清单：办件 {content.case_id}",
        timestamper=timestamper,
        timestamp_room=room,
    )

"""`ecas seals`: register (电子印章备案), list and revoke departments' e-seals, and seal a
department's own PDF or OFD documents. The operator at the command line acts as administrator
(recorded as `cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, option_date, settings_from
from cert_authority.eseals.schemas import SealCreate
from cert_authority.http.middleware.body_limit import DOCUMENT_LIMIT
from cert_authority.services import licence_services
from keys.crl import REASONS
from seals.picture import MAX_UPLOAD_BYTES
from templates.spec import parse_model

seals_app = typer.Typer(help="电子印章：备案、查看、吊销、为本部门文件盖章", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON 输出")]




@seals_app.command("register")
@friendly_errors
def seals_register(
    ctx: typer.Context,
    uscc: Annotated[str, typer.Option(help="用章部门的统一社会信用代码")],
    name: Annotated[str, typer.Option(help="印章名称，如 某局电子证照专用章")],
    picture: Annotated[Path | None, typer.Option(help="印模 PNG 文件（不给出则生成圆形印章）")] = None,
    generate: Annotated[bool, typer.Option("--generate", help="按部门名称生成标准圆形红色印章（默认）")] = False,
    purpose: Annotated[str | None, typer.Option(help="印章用途，印在星下，如 电子证照专用章")] = None,
    diameter: Annotated[float, typer.Option(help="印章直径（毫米）；上传图片时为其宽度")] = 42,
    seal_type: Annotated[int, typer.Option("--type", help="印章类型：1 单位印章，2 个人印章")] = 1,
    valid_start: Annotated[str | None, typer.Option(help="有效期起始 YYYY-MM-DD（默认为印章证书的起始）")] = None,
    valid_end: Annotated[str | None, typer.Option(help="有效期截止 YYYY-MM-DD（默认为印章证书的截止）")] = None,
) -> None:
    """备案电子印章：分中心签发印章证书并作为制章者签署印章（GB/T 38540）。"""
    if picture is not None and generate:
        raise UsageError("--picture 与 --generate 只能二选一")
    data = None
    if picture is not None:
        size = picture.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise UsageError(f"印章图片 {picture} 过大：{size / 1048576:.1f} MB，上限 {MAX_UPLOAD_BYTES // 1048576} MB")
        data = picture.read_bytes()
    request = parse_model(
        SealCreate,
        {
            "department_uscc": uscc,
            "name": name,
            "seal_type": seal_type,
            "purpose": purpose,
            "diameter_mm": diameter,
            "valid_start": option_date(valid_start, "--valid-start"),
            "valid_end": option_date(valid_end, "--valid-end"),
        },
    )
    seal = licence_services(settings_from(ctx)).seals.register(CLI_ACTOR, request, data)
    typer.echo(f"已备案印章 {seal.id}：{seal.name}（印章编码 {seal.es_id}）")
    typer.echo(f"印章证书 {seal.cert_serial}  有效期 {seal.valid_start:%Y-%m-%d} 至 {seal.valid_end:%Y-%m-%d}")
    typer.echo(f"印章数据 SM3 {seal.seal_sm3}")


@seals_app.command("list")
@friendly_errors
def seals_list(
    ctx: typer.Context,
    uscc: Annotated[str | None, typer.Option(help="只列出此部门的印章")] = None,
    as_json: JsonOption = False,
) -> None:
    """列出已备案的印章。"""
    seals = licence_services(settings_from(ctx)).seals.list(CLI_ACTOR, uscc)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in seals], ensure_ascii=False, indent=2))
        return
    for s in seals:
        typer.echo(
            f"{s.id:>4}  {s.status:8} {s.department_uscc}  {s.es_id}  证书 {s.cert_serial[:12]}…  "
            f"至 {s.valid_end:%Y-%m-%d}  {s.name}"
        )


@seals_app.command("revoke")
@friendly_errors
def seals_revoke(
    ctx: typer.Context,
    seal_id: Annotated[int, typer.Argument(help="印章编号（见 ecas seals list）")],
    reason: Annotated[str, typer.Option(help="吊销原因（RFC 5280）：" + ", ".join(REASONS))] = "cessationOfOperation",
    note: Annotated[str | None, typer.Option(help="说明")] = None,
) -> None:
    """吊销印章及其印章证书（CRL 立即更新，OCSP 立即显示吊销）。"""
    seal = licence_services(settings_from(ctx)).seals.revoke(CLI_ACTOR, seal_id, reason, note)
    typer.echo(f"已吊销印章 {seal.id}（{seal.name}）及其证书 {seal.cert_serial}（{reason}）")


@seals_app.command("sign")
@friendly_errors
def seals_sign(
    ctx: typer.Context,
    seal_id: Annotated[int, typer.Argument(help="印章编号（见 ecas seals list）")],
    document: Annotated[Path, typer.Argument(help="要盖章的 PDF 或 OFD 文件")],
    x: Annotated[float, typer.Option(help="印章左上角距页面左边缘（mm）")],
    y: Annotated[float, typer.Option(help="印章左上角距页面上边缘（mm）")],
    output: Annotated[Path, typer.Option("-o", "--output", help="输出文件")],
    page: Annotated[int, typer.Option(min=0, help="页码，从 0 起")] = 0,
    size: Annotated[float | None, typer.Option(help="印章宽度（mm），默认为印章本身尺寸")] = None,
) -> None:
    """用部门的电子印章为本部门的 PDF/OFD 文件盖章（签章记入审计）。"""
    if document.stat().st_size > DOCUMENT_LIMIT:
        raise UsageError(f"文件 {document} 过大（上限 {DOCUMENT_LIMIT // 1048576} MB）")
    seals = licence_services(settings_from(ctx)).seals
    sealed = seals.seal_document(CLI_ACTOR, seal_id, document.read_bytes(), page, x, y, size)
    output.write_bytes(sealed)
    typer.echo(f"已盖章：{output}（{len(sealed)} 字节）")

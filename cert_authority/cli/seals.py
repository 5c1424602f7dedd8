"""`ecas seals`: seal governance (电子印章备案) and use. Departments' seals are applied for, approved
or rejected, suspended and resumed, imported from the provincial seal platform, revoked, listed and
exported for the province; a department's own PDF or OFD documents are sealed. The operator at the
command line acts as administrator (recorded as `cli`); `register` applies and approves at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, option_date, settings_from, writable_file
from cert_authority.eseals.schemas import SealCreate, SealImport, SealPublic
from cert_authority.http.middleware.body_limit import DOCUMENT_LIMIT
from cert_authority.pki.service import write_atomically
from cert_authority.services import licence_services
from keys.crl import REASONS
from seals.picture import MAX_UPLOAD_BYTES
from templates.spec import parse_model

seals_app = typer.Typer(
    help="电子印章：申请备案、审批、驳回、暂停与恢复、导入、吊销、查看、导出备案，为本部门文件盖章",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON 输出")]
SealId = Annotated[int, typer.Argument(help="印章编号（见 ecas seals list）")]
MAX_SEAL_FILE = 4 * 1024 * 1024


def _application(
    uscc: str,
    name: str,
    legal_representative: str,
    picture: Path | None,
    generate: bool,
    purpose: str | None,
    diameter: float,
    seal_type: int,
    valid_start: str | None,
    valid_end: str | None,
) -> tuple[SealCreate, bytes | None]:
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
            "legal_representative": legal_representative,
            "seal_type": seal_type,
            "purpose": purpose,
            "diameter_mm": diameter,
            "valid_start": option_date(valid_start, "--valid-start"),
            "valid_end": option_date(valid_end, "--valid-end"),
        },
    )
    return request, data


UsccOption = Annotated[str, typer.Option(help="用章部门的统一社会信用代码")]
NameOption = Annotated[str, typer.Option(help="印章名称：本部门登记名称加用途，如 某局电子证照专用章")]
RepresentativeOption = Annotated[str, typer.Option("--legal-representative", help="用章部门的法定代表人姓名")]
PictureOption = Annotated[Path | None, typer.Option(help="印模 PNG 文件（不给出则生成圆形印章）")]
GenerateOption = Annotated[bool, typer.Option("--generate", help="按部门名称生成标准圆形红色印章（默认）")]
PurposeOption = Annotated[str | None, typer.Option(help="印章用途，印在星下，如 电子证照专用章")]
DiameterOption = Annotated[float, typer.Option(help="印章直径（毫米）；上传图片时为其宽度")]
TypeOption = Annotated[int, typer.Option("--type", help="印章类型：1 单位印章，2 个人印章")]
StartOption = Annotated[str | None, typer.Option(help="有效期起始 YYYY-MM-DD（默认为印章证书的起始）")]
EndOption = Annotated[str | None, typer.Option(help="有效期截止 YYYY-MM-DD（默认为印章证书的截止）")]


def _show(seal: SealPublic) -> None:
    typer.echo(f"印章 {seal.id}：{seal.name}（{seal.department_name}，状态 {seal.status}）")
    if seal.es_id and seal.cert_serial and seal.valid_start and seal.valid_end:
        typer.echo(f"印章编码 {seal.es_id}  印章证书 {seal.cert_serial}")
        typer.echo(f"有效期 {seal.valid_start:%Y-%m-%d} 至 {seal.valid_end:%Y-%m-%d}  印章数据 SM3 {seal.seal_sm3}")


@seals_app.command("apply")
@friendly_errors
def seals_apply(
    ctx: typer.Context,
    uscc: UsccOption,
    name: NameOption,
    legal_representative: RepresentativeOption,
    picture: PictureOption = None,
    generate: GenerateOption = False,
    purpose: PurposeOption = None,
    diameter: DiameterOption = 42,
    seal_type: TypeOption = 1,
    valid_start: StartOption = None,
    valid_end: EndOption = None,
) -> None:
    """申请备案电子印章（待管理员审批：ecas seals approve）。"""
    request, data = _application(
        uscc, name, legal_representative, picture, generate, purpose, diameter, seal_type, valid_start, valid_end
    )
    seal = licence_services(settings_from(ctx)).seals.apply(CLI_ACTOR, request, data)
    typer.echo(f"已提交印章备案申请 {seal.id}：{seal.name}（待审批：ecas seals approve {seal.id}）")


@seals_app.command("register")
@friendly_errors
def seals_register(
    ctx: typer.Context,
    uscc: UsccOption,
    name: NameOption,
    legal_representative: RepresentativeOption,
    picture: PictureOption = None,
    generate: GenerateOption = False,
    purpose: PurposeOption = None,
    diameter: DiameterOption = 42,
    seal_type: TypeOption = 1,
    valid_start: StartOption = None,
    valid_end: EndOption = None,
) -> None:
    """申请并审批备案电子印章（管理员一步完成，审计记录申请与审批两步）：分中心签发印章证书并作为制章者签署印章。"""
    request, data = _application(
        uscc, name, legal_representative, picture, generate, purpose, diameter, seal_type, valid_start, valid_end
    )
    seal = licence_services(settings_from(ctx)).seals.register(CLI_ACTOR, request, data)
    typer.echo(f"已备案印章 {seal.id}：{seal.name}（印章编码 {seal.es_id}）")
    typer.echo(f"印章证书 {seal.cert_serial}  有效期 {seal.valid_start:%Y-%m-%d} 至 {seal.valid_end:%Y-%m-%d}")
    typer.echo(f"印章数据 SM3 {seal.seal_sm3}")


@seals_app.command("approve")
@friendly_errors
def seals_approve(ctx: typer.Context, seal_id: SealId) -> None:
    """审批通过印章备案申请：分中心签发印章证书并签署印章（导入的印章再次核验），印章生效。"""
    seal = licence_services(settings_from(ctx)).seals.approve(CLI_ACTOR, seal_id)
    typer.echo(f"已备案印章 {seal.id}：{seal.name}（印章编码 {seal.es_id}）")
    _show(seal)


@seals_app.command("reject")
@friendly_errors
def seals_reject(
    ctx: typer.Context, seal_id: SealId, reason: Annotated[str, typer.Option(help="驳回理由")]
) -> None:
    """驳回印章备案申请。"""
    seal = licence_services(settings_from(ctx)).seals.reject(CLI_ACTOR, seal_id, reason.strip())
    typer.echo(f"已驳回印章备案申请 {seal.id}（{seal.name}）：{reason.strip()}")


@seals_app.command("suspend")
@friendly_errors
def seals_suspend(
    ctx: typer.Context, seal_id: SealId, reason: Annotated[str, typer.Option(help="暂停使用的原因")]
) -> None:
    """暂停使用印章（暂停期间不能颁证、不能签章）。"""
    seal = licence_services(settings_from(ctx)).seals.suspend(CLI_ACTOR, seal_id, reason.strip())
    typer.echo(f"已暂停使用印章 {seal.id}（{seal.name}）：{reason.strip()}")


@seals_app.command("resume")
@friendly_errors
def seals_resume(ctx: typer.Context, seal_id: SealId) -> None:
    """恢复使用暂停的印章。"""
    seal = licence_services(settings_from(ctx)).seals.resume(CLI_ACTOR, seal_id)
    typer.echo(f"已恢复使用印章 {seal.id}（{seal.name}）")


@seals_app.command("import")
@friendly_errors
def seals_import(
    ctx: typer.Context,
    seal_file: Annotated[Path, typer.Argument(help="省级印章平台制作的印章（DER 编码的 SES_Seal）")],
    uscc: UsccOption,
    legal_representative: RepresentativeOption,
    maker_chain: Annotated[Path | None, typer.Option(help="制章者证书之上的CA证书（PEM，可多张）")] = None,
) -> None:
    """导入省级印章平台制作的印章：核验制章者签名与证书链、签章人证书属于本部门，待管理员审批备案。"""
    if seal_file.stat().st_size > MAX_SEAL_FILE:
        raise UsageError(f"印章文件 {seal_file} 过大（上限 {MAX_SEAL_FILE // 1048576} MB）")


    request = parse_model(
        SealImport,
        {
            "department_uscc": uscc,
            "legal_representative": legal_representative,
            "seal": base64.b64encode(seal_file.read_bytes()).decode(),
            "maker_chain": maker_chain.read_text(encoding="utf-8") if maker_chain is not None else None,
        },
    )
    seal = licence_services(settings_from(ctx)).seals.import_seal(CLI_ACTOR, request)
    typer.echo(f"已提交导入印章的备案申请 {seal.id}：{seal.name}（待审批：ecas seals approve {seal.id}）")


@seals_app.command("export-filing")
@friendly_errors
def seals_export_filing(
    ctx: typer.Context, directory: Annotated[Path, typer.Argument(help="导出目录（写入 filing.json 与印模 PNG）")]
) -> None:
    """导出有效印章的备案清单（filing.json：印章证书序列号、有效期、印模 SM3），及印模 PNG 与印章数据。"""
    filing, files = licence_services(settings_from(ctx)).seals.filing(CLI_ACTOR)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomically(directory / name, data)
    body = filing.model_dump(mode="json")
    for entry in body["seals"]:
        entry.pop("picture_png", None)
    write_atomically(directory / "filing.json", json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n")
    typer.echo(f"已导出 {len(filing.seals)} 枚有效印章的备案清单：{directory / 'filing.json'}")


@seals_app.command("list")
@friendly_errors
def seals_list(
    ctx: typer.Context,
    uscc: Annotated[str | None, typer.Option(help="只列出此部门的印章")] = None,
    as_json: JsonOption = False,
) -> None:
    """列出印章（含待审批、已驳回、暂停使用的）。"""
    seals = licence_services(settings_from(ctx)).seals.list(CLI_ACTOR, uscc)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in seals], ensure_ascii=False, indent=2))
        return
    for s in seals:
        certificate = f"证书 {s.cert_serial[:12]}…" if s.cert_serial else "证书 —"
        until = f"至 {s.valid_end:%Y-%m-%d}" if s.valid_end else "至 —"
        code = s.es_id or "—"
        typer.echo(f"{s.id:>4}  {s.status:9} {s.department_uscc}  {code:16}  {certificate}  {until}  {s.name}")


@seals_app.command("revoke")
@friendly_errors
def seals_revoke(
    ctx: typer.Context,
    seal_id: SealId,
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
    output: Annotated[Path, typer.Option("-o", "--output", help="输出文件", callback=writable_file)],
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

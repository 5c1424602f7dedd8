"""`ecas issue` and `ecas licence ...`: issue, show, list, export, change, revoke, cancel licences
from the command line. The operator acts as administrator (recorded as `cli`), on behalf of the
issuing department named with --issuer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, option_date, settings_from, writable_file
from cert_authority.issuing.face_data import PHOTO_MAX_BYTES
from cert_authority.issuing.origin import ORIGIN_NAMES
from cert_authority.issuing.schemas import FILE_FORMATS, LICENCE_STATUSES, STATUS_NAMES, LicencePublic, LicenceSummary
from cert_authority.services import LicenceServices, licence_services

licence_app = typer.Typer(help="证照：查看、列表、导出、变更、吊销、注销、历史", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON 输出")]
MAX_DATA_BYTES = 1024 * 1024


def _services(ctx: typer.Context) -> LicenceServices:
    return licence_services(settings_from(ctx))


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UsageError(f"照面数据文件中的字段重复：{'、'.join(duplicates)}")
    return dict(pairs)


def read_face_data(path: Path) -> dict[str, Any]:
    """A JSON object of face fields (key → value) from a file; a key written twice is an error."""
    if path.stat().st_size > MAX_DATA_BYTES:
        raise UsageError(f"照面数据文件 {path} 过大（上限 1 MB）")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"照面数据文件 {path} 不是有效的 UTF-8 JSON：{exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"照面数据文件 {path} 应为 JSON 对象（字段 key → 值）")
    return data


def _photo(path: Path | None) -> bytes | None:
    if path is None:
        return None
    size = path.stat().st_size
    if size > PHOTO_MAX_BYTES:
        raise UsageError(f"照片 {path} 过大：{size / 1048576:.1f} MB，上限 {PHOTO_MAX_BYTES // 1048576} MB")
    return path.read_bytes()


def _print_licence(licence: LicencePublic) -> None:
    until = licence.valid_until.isoformat() if licence.valid_until else "长期"
    typer.echo(f"证照标识 {licence.identifier}")
    typer.echo(f"{licence.name}  证照编号 {licence.licence_number}  第 {licence.version} 版")
    typer.echo(
        f"状态 {STATUS_NAMES.get(licence.status, licence.status)}（{licence.status}）"
        + (f"  {licence.status_reason}" if licence.status_reason else "")
    )
    typer.echo(f"持证主体 {licence.holder.name}（{licence.holder.code_type} {licence.holder.code}）")
    typer.echo(f"颁证单位 {licence.issuer.name}（{licence.issuer.code}）  颁证日期 {licence.issue_date}")
    if licence.origin != "new":
        original = f"  原颁证单位 {licence.original_issuer_name}" if licence.original_issuer_name else ""
        made = f"{licence.created_at:%Y-%m-%d %H:%M:%S}Z"
        typer.echo(f"来源 {ORIGIN_NAMES[licence.origin]}（{licence.origin}）  电子证照生成于 {made}{original}")
    typer.echo(f"有效期 {licence.valid_from} 至 {until}")
    typer.echo(f"签章 {licence.seal.seal_name}  {licence.seal.sealed_at:%Y-%m-%d %H:%M:%S}Z")
    if licence.superseded_by:
        typer.echo(f"已变更为 {licence.superseded_by}")
    typer.echo(f"PDF SM3 {licence.files.pdf}")
    typer.echo(f"OFD SM3 {licence.files.ofd}")
    if licence.files.png:
        typer.echo(f"PNG SM3 {licence.files.png}")


@friendly_errors
def issue(
    ctx: typer.Context,
    type_code: Annotated[str, typer.Option("--type", help="证照类型代码")],
    issuer: Annotated[str, typer.Option(help="颁证部门统一社会信用代码")],
    data: Annotated[Path, typer.Option(help="照面数据 JSON 文件（字段 key → 值）")],
    photo: Annotated[Path | None, typer.Option(help="持证人照片（PNG/JPEG）")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="幂等键：同一个键只颁发一次")] = None,
    valid_from: Annotated[str | None, typer.Option(help="有效期起始 YYYY-MM-DD（有效期在颁证时给出的类型）")] = None,
    valid_until: Annotated[str | None, typer.Option(help="有效期截止 YYYY-MM-DD")] = None,
    as_json: JsonOption = False,
) -> None:
    """颁发证照：校验、编号、生成 PDF/OFD 并加盖电子印章，打印证照标识与文件 SM3。"""
    result = _services(ctx).issuance.issue_licence(
        CLI_ACTOR,
        type_code,
        read_face_data(data),
        photo=_photo(photo),
        idempotency_key=idempotency_key,
        valid_from=option_date(valid_from, "--valid-from"),
        valid_until=option_date(valid_until, "--valid-until"),
        issuer_uscc=issuer,
    )
    licence = result.licence
    if as_json:
        typer.echo(json.dumps(licence.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    if result.replayed:
        typer.secho("幂等键已使用过：返回此前颁发的证照，未重复颁发", fg=typer.colors.YELLOW, err=True)
    typer.echo(licence.identifier)
    typer.echo(f"证照编号 {licence.licence_number}")
    typer.echo(f"PDF SM3 {licence.files.pdf}")
    typer.echo(f"OFD SM3 {licence.files.ofd}")


@licence_app.command("show")
@friendly_errors
def licence_show(
    ctx: typer.Context, identifier: Annotated[str, typer.Argument(help="证照标识")], as_json: JsonOption = False
) -> None:
    """查看证照：元数据、照面信息、文件摘要。"""
    licence = _services(ctx).queries.get(CLI_ACTOR, identifier)
    if as_json:
        typer.echo(json.dumps(licence.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    _print_licence(licence)
    for key, value in licence.data.items():
        typer.echo(f"  {key}: {value}")


@licence_app.command("list")
@friendly_errors
def licence_list(
    ctx: typer.Context,
    type_code: Annotated[str | None, typer.Option("--type", help="证照类型代码")] = None,
    status: Annotated[str | None, typer.Option(help="状态：" + "、".join(LICENCE_STATUSES))] = None,
    issuer: Annotated[str | None, typer.Option(help="颁证部门统一社会信用代码")] = None,
    holder_code: Annotated[str | None, typer.Option(help="持证主体代码（完整）")] = None,
    page: Annotated[int, typer.Option(help="页码（按偏移，越往后越慢；请用 --cursor）")] = 1,
    page_size: Annotated[int, typer.Option(help="每页条数")] = 50,
    cursor: Annotated[str | None, typer.Option(help="从上一页给出的“下一页游标”接着列")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="列出全部（按键逐页读取，每条恰好一次）")] = False,
    as_json: JsonOption = False,
) -> None:
    """列出证照（持证主体代码脱敏显示）。"""
    queries = _services(ctx).queries
    filters: dict[str, Any] = {"type_code": type_code, "status": status, "issuer": issuer, "holder_code": holder_code}
    if all_pages:
        if page > 1 or cursor is not None:
            raise typer.BadParameter("--all 从头列出全部，不能与 --page 或 --cursor 同用")
        items = [item for found in queries.search_all(CLI_ACTOR, **filters) for item in found.items]
        if as_json:
            typer.echo(json.dumps([item.model_dump(mode="json") for item in items], ensure_ascii=False, indent=2))
            return
        _echo_items(items)
        typer.echo(f"共 {len(items)} 条")
        return
    result = queries.search(CLI_ACTOR, **filters, page=page, page_size=page_size, cursor=cursor)
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    _echo_items(result.items)
    shown = f"共 {result.total} 条，本页 {len(result.items)} 条（每页 {result.page_size} 条）"
    typer.echo(shown if cursor is not None else f"{shown}，第 {result.page} 页")
    if result.next_cursor:
        typer.echo(f"下一页：--cursor {result.next_cursor}")


def _echo_items(items: list[LicenceSummary]) -> None:
    for item in items:
        typer.echo(f"{item.identifier}  {item.status:10} {item.licence_number}  {item.holder_code}  {item.holder_name}")


@licence_app.command("export")
@friendly_errors
def licence_export(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="证照标识")],
    output: Annotated[Path, typer.Option("-o", "--output", help="输出文件", callback=writable_file)],
    fmt: Annotated[str, typer.Option("--format", help="格式：" + "、".join(FILE_FORMATS))] = "pdf",
) -> None:
    """导出证照文件：盖章的 PDF 或 OFD，或手机展示用 PNG（SM3 校验后写出）。"""
    data = _services(ctx).queries.file(CLI_ACTOR, identifier, fmt)
    output.write_bytes(data)
    typer.echo(f"已写入 {output}（{len(data)} 字节）")


@licence_app.command("change")
@friendly_errors
def licence_change(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="证照标识")],
    data: Annotated[Path, typer.Option(help="要变更的字段 JSON 文件（key → 新值，null 删除选填字段）")],
    photo: Annotated[Path | None, typer.Option(help="新照片（不给出则沿用）")] = None,
    reason: Annotated[str | None, typer.Option(help="变更事由")] = None,
    valid_from: Annotated[str | None, typer.Option(help="新的有效期起始 YYYY-MM-DD")] = None,
    valid_until: Annotated[str | None, typer.Option(help="新的有效期截止 YYYY-MM-DD")] = None,
) -> None:
    """变更证照：生成新版本（版本号加一）并重新盖章，原版本标记为已变更。"""
    licence = _services(ctx).issuance.change_licence(
        CLI_ACTOR,
        identifier,
        read_face_data(data),
        photo=_photo(photo),
        valid_from=option_date(valid_from, "--valid-from"),
        valid_until=option_date(valid_until, "--valid-until"),
        reason=reason,
    )
    typer.echo(licence.identifier)
    typer.echo(f"原证照 {identifier} 已标记为已变更")


@licence_app.command("revoke")
@friendly_errors
def licence_revoke(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="证照标识")],
    reason: Annotated[str, typer.Option(help="吊销原因（必填）")],
) -> None:
    """吊销证照。"""
    licence = _services(ctx).lifecycle.revoke(CLI_ACTOR, identifier, reason)
    typer.echo(f"已吊销 {licence.identifier}：{reason}")


@licence_app.command("cancel")
@friendly_errors
def licence_cancel(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="证照标识")],
    reason: Annotated[str, typer.Option(help="注销原因（必填）")],
) -> None:
    """注销证照（有效或已过期的证照）。"""
    licence = _services(ctx).lifecycle.cancel(CLI_ACTOR, identifier, reason)
    typer.echo(f"已注销 {licence.identifier}：{reason}")


@licence_app.command("history")
@friendly_errors
def licence_history(
    ctx: typer.Context, identifier: Annotated[str, typer.Argument(help="证照标识")], as_json: JsonOption = False
) -> None:
    """证照状态历史（各版本）。"""
    events = _services(ctx).queries.history(CLI_ACTOR, identifier)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], ensure_ascii=False, indent=2))
        return
    for e in events:
        reason = f"  {e.reason}" if e.reason else ""
        typer.echo(
            f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.action:7} {e.previous_status or '-':>10} → {e.status:10} "
            f"{e.identifier}  {e.actor}{reason}"
        )

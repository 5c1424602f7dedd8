"""`ecas verify FILE_OR_IDENTIFIER [--json]`: the same report as the API. Exit status 0 for VALID,
1 for INVALID, 2 when no verdict could be reached: INDETERMINATE, or a usage or file error (a missing
file, a data directory without ECAS data), with one 错误： line. So a script reads 1 as "this licence
is not valid" and nothing else."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.checking.licences import MAX_UPLOAD_BYTES
from cert_authority.cli.support import UsageError, friendly_errors, settings_from
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.services import licence_services
from cert_authority.timeutil import BEIJING
from verification.report import Report, Status

EXIT_CODES = {Status.VALID: 0, Status.INVALID: 1, Status.INDETERMINATE: 2}
VERDICTS = {Status.VALID: "有效", Status.INVALID: "无效", Status.INDETERMINATE: "无法确认"}
COLOURS = {
    Status.VALID: typer.colors.GREEN,
    Status.INVALID: typer.colors.RED,
    Status.INDETERMINATE: typer.colors.YELLOW,
}


NO_VERDICT = 2  # INDETERMINATE's code: a usage or file error reached no verdict either


@friendly_errors
def verify(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="盖章的 PDF/OFD 文件路径，或证照标识")],
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON 报告")] = False,
) -> None:
    """验证证照：文件完整性、签名、印章、证书链、吊销状态、证照状态与登记记录。

    退出码：0 有效（VALID）；1 无效（INVALID）；2 无法确认（INDETERMINATE），
    或用法、文件错误（文件不存在、数据目录中没有 ECAS 数据等）。
    """
    try:
        report = _report(ctx, target)
    except (UsageError, OSError) as exc:
        typer.secho(f"错误：{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(NO_VERDICT) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print(report)
    raise typer.Exit(EXIT_CODES[report.result])


def _report(ctx: typer.Context, target: str) -> Report:
    services = licence_services(settings_from(ctx))
    path = Path(target)
    if path.is_file():
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise UsageError(f"文件 {path} 过大（上限 {MAX_UPLOAD_BYTES // 1048576} MB）")
        report = services.verification.verify_file(path.read_bytes())
    elif path.suffix.lower() in (".pdf", ".ofd"):
        raise UsageError(f"文件 {target} 不存在")
    else:  # an identifier; a malformed one gets a report saying exactly what is wrong
        report = services.verification.verify_identifier(CLI_ACTOR, target)
        if report.reason == "not_found":  # province mode: a licence a city pushed here
            verification = services.verification
            province = ProvinceLibrary(verification.engine, verification.filestore, verification.personal)
            report = province.verify_identifier(CLI_ACTOR, target) or report
    return report


def _print(report: Report) -> None:
    typer.secho(
        f"{VERDICTS[report.result]}（{report.result.value}）：{report.message}", fg=COLOURS[report.result], bold=True
    )
    subject = report.subject
    if subject.get("identifier"):
        typer.echo(f"证照 {subject.get('name', '')} {subject['identifier']}")
    if subject.get("kind") == "reuse_receipt":
        number = f"，部门办件号 {subject['case_number']}" if subject.get("case_number") else ""
        closed = f"{dt.datetime.fromisoformat(subject['closed_at']).astimezone(BEIJING):%Y-%m-%d %H:%M}"
        typer.echo(f"材料复用清单：办件 {subject['case']}（事项 {subject['matter']}{number}），{closed} 办结")
    for check in report.checks:
        mark = {Status.VALID: "✓", Status.INVALID: "✗", Status.INDETERMINATE: "?"}[check.status]
        typer.echo(f"  {mark} {check.name:10} {check.message}")
    for key, value in (report.face_data or {}).items():
        typer.echo(f"    {key}: {value}")

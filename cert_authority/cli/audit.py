"""`ecas audit verify|anchor`: the HMAC-SM3 chain of audit rows, use records and status events."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cert_authority.cli.support import friendly_errors, now, settings_from
from cert_authority.services import migrated_engine
from cert_authority.store.chain import anchor, verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring

audit_app = typer.Typer(help="审计记录防篡改：校验链、锚定链头", no_args_is_help=True)

KIND_NAMES = {
    "edited": "被修改",
    "inserted": "被插入",
    "deleted": "被删除",
    "truncated": "链尾被截断",
    "relinked": "链被改接",
}


@audit_app.command("verify")
@friendly_errors
def audit_verify(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False
) -> None:
    """校验审计记录、用证记录和证照状态变更的 HMAC-SM3 链：找出被修改、插入或删除的行（有问题时退出码 1）。"""
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    keys = data_key_ring(settings).all_versions(RECORDS)
    with engine.connect() as connection:
        report = verify_chains(connection, keys)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        typer.echo(
            f"已校验 {report.rows} 行（{report.partitions} 条链，{report.anchors} 个锚点；"
            f"链建立前的旧记录 {report.unchained_before} 行）"
        )
        for problem in report.problems:
            where = f"{problem.table} #{problem.row_id}" if problem.table else "（行已不在）"
            kind = KIND_NAMES.get(problem.kind, problem.kind)
            typer.echo(f"{kind}：{where}，链 {problem.partition} 第 {problem.seq} 行：{problem.detail}")
        typer.echo("完好" if report.ok else f"发现 {len(report.problems)} 处问题")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
@friendly_errors
def audit_anchor(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False
) -> None:
    """记录各条链当前的链头（定期运行）；打印本次锚定的 SM3 摘要，可交透明日志或另行保存。"""
    engine = migrated_engine(settings_from(ctx))
    with engine.begin() as connection:
        run = anchor(connection, now())
    if as_json:
        typer.echo(json.dumps({"at": run.at.isoformat(), "heads": len(run.heads), "digest": run.digest}))
    else:
        typer.echo(f"已锚定 {len(run.heads)} 条链的链头，摘要（SM3）{run.digest}")

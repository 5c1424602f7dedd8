"""`ecas audit verify|anchor`: the HMAC-SM3 chain of audit rows, use records and status events, and
its anchors in the transparency log (transparency/anchors.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from cert_authority.cli.support import friendly_errors, now, settings_from
from cert_authority.services import licence_services
from cert_authority.store.chain import verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring
from cert_authority.transparency.anchors import anchor_and_log, check_anchors

audit_app = typer.Typer(help="审计记录防篡改：校验链、锚定链头", no_args_is_help=True)

KIND_NAMES = {
    "edited": "被修改",
    "inserted": "被插入",
    "deleted": "被删除",
    "truncated": "链尾被截断",
    "relinked": "链被改接",
    "anchor_edited": "锚定被修改",
    "anchor_unlogged": "锚定不在透明日志中",
    "anchor_deleted": "锚定被删除",
    "anchor_proof_failed": "透明日志核验失败",
}


@audit_app.command("verify")
@friendly_errors
def audit_verify(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False
) -> None:
    """校验审计记录、用证记录和证照状态变更的 HMAC-SM3 链，并对照透明日志核验各次锚定。

    找出被修改、插入或删除的行和被改动、删除的锚定（有问题时退出码 1）。"""
    settings = settings_from(ctx)
    services = licence_services(settings)
    keys = data_key_ring(settings).all_versions(RECORDS)
    with services.log.engine.connect() as connection:
        report = verify_chains(connection, keys)
        anchors = check_anchors(services.log, connection, now())
    report = dataclasses.replace(report, problems=report.problems + anchors.problems)
    if as_json:
        typer.echo(json.dumps(report.as_dict() | {"anchor_log": anchors.as_dict()}, ensure_ascii=False))
    else:
        typer.echo(
            f"已校验 {report.rows} 行（{report.partitions} 条链，{report.anchors} 个锚点；"
            f"链建立前的旧记录 {report.unchained_before} 行）"
        )
        typer.echo(
            f"锚定 {anchors.runs} 次，其中 {anchors.logged} 次已对照透明日志核验"
            + (f"（日志记录锚定以前的 {anchors.unlogged_before} 次未入日志）" if anchors.unlogged_before else "")
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
    """记录各条链当前的链头并记入透明日志（定期运行）；打印本次锚定的 SM3 摘要和签入的树头。"""
    services = licence_services(settings_from(ctx))
    with services.log.engine.begin() as connection:
        run = anchor_and_log(connection, now())
    head = (services.log.integrate() or services.log.latest_head()) if run.heads else None
    size = head.tree_size if head else None
    if as_json:
        typer.echo(
            json.dumps({"at": run.at.isoformat(), "heads": len(run.heads), "digest": run.digest, "tree_size": size})
        )
    elif not run.heads:
        typer.echo("各条链的链头自上次锚定以来没有变化，无需锚定")
    else:
        typer.echo(f"已锚定 {len(run.heads)} 条链的链头，摘要（SM3）{run.digest}；已记入透明日志（树大小 {size}）")

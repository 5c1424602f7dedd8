"""`ecas issue-batch`: seal existing licences (存量证照) in bulk from a CSV or JSON Lines file, with a
progress bar, a rejects file and a summary (see `batch` for the file format and resuming)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.cli.support import UsageError, friendly_errors, settings_from
from cert_authority.issuing.batch import (
    BatchOrigin,
    BatchPool,
    BatchSummary,
    RejectsFile,
    RowResult,
    check_batch,
    read_rows,
)
from cert_authority.issuing.origin import ORIGINS
from cert_authority.services import issuance_service, licence_services


@friendly_errors
def issue_batch(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="批量文件：.csv（首行为字段 key）或 .jsonl（每行一个 JSON 对象）")],
    type_code: Annotated[str, typer.Option("--type", help="证照类型代码")],
    issuer: Annotated[str | None, typer.Option(help="颁证部门统一社会信用代码（类型只有一个颁发部门时可省略）")] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="被拒绝行的输出文件（默认：批量文件名.rejects.csv/.jsonl）")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="工作进程数（默认每个 CPU 核一个）")] = os.cpu_count()
    or 1,
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出汇总")] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="new 新办（编号、日期由系统生成）；stock 存量证照转换（列 licence_number、issue_date、"
            "valid_from、valid_until、original_issuer_name 给出原证信息）；"
            "paper-twin 纸质证照同步制发（列 licence_number）"
        ),
    ] = "new",
    include_expired: Annotated[
        bool, typer.Option("--include-expired", help="仅 stock：原证已过期的也转换入库（状态为已过期）")
    ] = False,
) -> None:
    """批量颁证（存量证照签章）：逐行校验、编号、生成并签章；可重复运行，已颁发的行自动跳过。"""
    if not file.is_file():
        raise UsageError(f"批量文件 {file} 不存在")
    origin = BatchOrigin(mode.replace("-", "_"), include_expired)
    if origin.origin not in ORIGINS:
        raise UsageError(f"--mode 取值无效：{mode}，可选：new、stock、paper-twin")
    if include_expired and origin.origin != "stock":
        raise UsageError("--include-expired 只能与 --mode stock 同用")
    settings = settings_from(ctx)
    services = licence_services(settings)
    issuer = issuer or _only_issuer(services.issuance.registry.type_spec(type_code).issuers, type_code)
    check_batch(services.issuance, type_code, issuer)
    total = sum(1 for _ in read_rows(file))
    rejects_path = rejects or file.with_name(f"{file.stem}.rejects{file.suffix.lower()}")
    if rejects_path.resolve() == file.resolve():
        raise UsageError("--rejects 不能是批量文件本身")
    rejects_path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    rejected = RejectsFile(file, rejects_path)
    summary = BatchSummary()

    started = time.perf_counter()
    eta = RemainingTime(total)
    with typer.progressbar(
        length=total, label="批量颁证", file=sys.stderr, show_pos=True, show_eta=False, item_show_func=lambda s: s
    ) as bar:

        def record(result: RowResult) -> None:
            summary.add(result)
            if result.rejected:
                rejected.add(result)
            bar.current_item = eta.after_one()  # typer's progress bar shows it with item_show_func
            bar.update(1)

        try:
            with BatchPool(issuance_service, settings, type_code, issuer, file.parent, workers, origin) as pool:
                pool.run(file, record)
        finally:
            rejected.close()
    summary.seconds = time.perf_counter() - started

    rate = summary.issued / summary.seconds if summary.seconds else 0.0
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "rows": summary.rows,
                    "issued": summary.issued,
                    "skipped": summary.skipped,
                    "rejected": summary.rejected,
                    "seconds": round(summary.seconds, 2),
                    "licences_per_s": round(rate, 1),
                    "rejects_file": str(rejects_path) if summary.rejected else None,
                },
                ensure_ascii=False,
            )
        )
    else:
        speed = f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"  # a small file is not "0 份/秒"
        typer.echo(
            f"共 {summary.rows} 行：颁发 {summary.issued} 份，跳过 {summary.skipped} 份（此前已颁发），"
            f"拒绝 {summary.rejected} 行；用时 {summary.seconds:.1f} 秒，{speed} 份/秒（{workers} 个工作进程）"
        )
        if summary.rejected:
            typer.secho(f"被拒绝的行及原因见 {rejects_path}；改正后可直接用该文件再次运行", fg=typer.colors.YELLOW)
    if summary.rejected:
        raise typer.Exit(1)


def _only_issuer(issuers: list[str], type_code: str) -> str:
    if len(issuers) != 1:
        raise UsageError(f"证照类型 {type_code} 有多个颁发部门，请用 --issuer 指定：{'、'.join(issuers)}")
    return issuers[0]


class RemainingTime:
    """The time left, from the pace since the first row came back: the workers' start (processes,
    keys, fonts) is not a row's cost, and counting it made a 5-second job show an ETA of minutes."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.first: float | None = None

    def after_one(self, now: float | None = None) -> str | None:
        now = time.perf_counter() if now is None else now
        self.done += 1
        if self.first is None:
            self.first = now
            return None
        left = (now - self.first) / (self.done - 1) * (self.total - self.done)
        return f"约剩 {left:.0f} 秒" if left < 120 else f"约剩 {left / 60:.0f} 分钟"

"""`ecas bench ...`: benchmarks that print figures beside a baseline measured in the same run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.cli.support import friendly_errors

bench_app = typer.Typer(help="性能基准（打印测量值，不是测试）", no_args_is_help=True)


# --- bench ---------------------------------------------------------------------------------
@bench_app.command("crypto")
@friendly_errors
def bench_crypto(
    seconds: Annotated[float, typer.Option(help="每项测量秒数")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="输出一个 JSON 对象")] = False,
) -> None:
    """每秒 SM2 签名/验签次数：本系统与同一次运行的 `openssl speed sm2` 对照，单核。"""
    from cert_authority.bench.crypto import crypto_benchmark

    result = crypto_benchmark(seconds)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"SM2 backend: {result['backend']}  ({result['message_bytes']}-byte messages, one core)")
    typer.echo(f"{'':22}{'sign/s':>10}{'verify/s':>10}")
    typer.echo(f"{'ecas (keys.sm2)':22}{result['sign_per_s']:>10}{result['verify_per_s']:>10}")
    typer.echo(f"{'openssl speed sm2':22}{result['openssl_sign_per_s']:>10}{result['openssl_verify_per_s']:>10}")
    typer.echo(f"{'ratio':22}{result['sign_ratio']:>10}{result['verify_ratio']:>10}")


@bench_app.command("serve")
@friendly_errors
def bench_serve(
    workers: Annotated[int, typer.Option(min=1, max=64, help="服务工作进程数")] = os.cpu_count() or 1,
    seconds: Annotated[float, typer.Option(min=1, max=60, help="每个场景的压测秒数")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="并发连接数")] = 16,
    scenario: Annotated[list[str] | None, typer.Option(help="只测这些场景（可重复）")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="数据目录（默认：新建临时目录，测完删除）")] = None,
    database_url: Annotated[str, typer.Option(help="数据库（默认本机 PostgreSQL，在其中新建 schema，测完删除）")] = (
        "postgresql+psycopg://127.0.0.1:5432/test"
    ),
    as_json: Annotated[
        bool,
        typer.Option("--json", help="输出 JSON：按场景的 rps、p50_ms、p99_ms、errors、vs_baseline、cpu_ms_per_request"),
    ] = False,
) -> None:
    """负载下的服务：在 PostgreSQL 上运行 `ecas serve --workers N`，由另一进程施压。"""
    from cert_authority.bench.serve import BASELINE, SCENARIOS, TARGETS, serve_benchmark

    chosen = tuple(scenario or SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"未知场景 {unknown}，可选：{'、'.join(SCENARIOS)}")
    if not as_json:
        typer.echo(f"准备演示数据，启动 {workers} 个工作进程；每个场景 {seconds:g} 秒，并发 {concurrency}…", err=True)
    result = serve_benchmark(workers, seconds, concurrency, chosen, data_dir, database_url)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(
        f"{'场景':18} {'请求数':>8} {'次/秒':>8} {'×基线':>7} {'p50 ms':>8} {'p99 ms':>8} {'错误':>6}"
        f"  {'CPU ms/次（服务+数据库+压测）':<22}  目标"
    )
    for name in (BASELINE, *chosen):
        r = result[name]
        ratio = f"{r.get('vs_baseline', 1.0):.3f}"
        figures = f"{r['requests']:>8} {r['rps']:>9} {ratio:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6}"
        cpu = r["cpu_ms_per_request"]
        spent = "—" if cpu is None else f"{cpu['service']:.2f}+{cpu['database']:.2f}+{cpu['load']:.2f}"
        target = TARGETS.get(name, "（基线：空请求）" if name == BASELINE else "")
        typer.echo(f"{name:20} {figures}  {spent:<32}  {target}")
        if r["first_error"]:
            typer.echo(f"  首个错误：{r['first_error']}")


@bench_app.command("issue")
@friendly_errors
def bench_issue(
    count: Annotated[int, typer.Option(min=1, help="颁发份数")] = 3000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="工作进程数（默认每核一个）")] = os.cpu_count() or 1,
    data_dir: Annotated[Path | None, typer.Option(help="数据目录（默认：新建临时目录，测完删除）")] = None,
    database_url: Annotated[str | None, typer.Option(help="数据库 URL（默认：数据目录下的 SQLite）")] = None,
    openssl_seconds: Annotated[float, typer.Option(min=1, help="openssl speed sm2 的测量秒数")] = 3.0,
    profile: Annotated[bool, typer.Option("--profile", help="改为单进程 cProfile 剖析，打印耗时最多的函数")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="输出一个 JSON 对象")] = False,
) -> None:
    """端到端每秒颁证份数（生成、PDF 与 OFD 签章、存储），与 `openssl speed sm2` 对照。"""
    from cert_authority.bench.issue import issue_benchmark, profile_issue

    if profile:
        typer.echo(profile_issue(min(count, 500)))
        return
    with typer.progressbar(length=2 * count, label="颁证", file=sys.stderr, show_pos=True) as bar:
        result = issue_benchmark(count, workers, data_dir, database_url, openssl_seconds, progress=bar.update)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['licences']} licences in {result['seconds']} s with {result['workers']} workers "
        f"on {result['database']}: {result['licences_per_s']} licences/s "
        f"({result['ms_per_licence_per_worker']} ms per licence per worker; "
        f"{result['signatures_per_licence']} SM2 signatures each, and {result['tsa_signatures_per_licence']} "
        "by the TSA for their timestamps)"
    )
    typer.echo(
        f"the same run without timestamps: {result['licences_per_s_without_timestamps']} licences/s "
        f"(timestamps cost {result['timestamp_cost_percent']} %)"
    )
    typer.echo(f"one licence through issue_licence (the API path), one process: {result['single_issue_ms']} ms")
    typer.echo(f"openssl speed sm2, one core: {result['openssl_sign_per_s']} signs/s")
    typer.echo(
        f"ratio {result['ratio']} (target ≥ {result['target_ratio']}); "
        f"target ≥ {result['target_licences_per_s']} licences/s on 2 cores"
    )
    typer.echo(
        f"stored per licence: {result['stored_bytes_per_licence']} bytes (PDF and OFD packed; "
        f"target ≤ {result['target_stored_bytes_per_licence']}); whole files: "
        f"{result['unpacked_bytes_per_licence']} bytes; shared parts stored once: {result['shared_bytes']} bytes"
    )
    typer.echo(
        f"download of one stored file: p50 {result['download_ms_p50']} ms, p99 {result['download_ms_p99']} ms "
        f"(stored whole, same run: p50 {result['download_unpacked_ms_p50']} ms, "
        f"p99 {result['download_unpacked_ms_p99']} ms)"
    )


@bench_app.command("sync")
@friendly_errors
def bench_sync(
    licences: Annotated[int, typer.Option(min=2, help="积压阶段颁发的证照份数（其中一半随后吊销）")] = 300,
    seconds: Annotated[float, typer.Option(min=1, max=60, help="边颁发边推送阶段的秒数")] = 5.0,
    batch_events: Annotated[int, typer.Option(min=1, max=1000, help="每批最多事件数")] = 500,
    database_url: Annotated[
        str, typer.Option(help="数据库（默认本机 PostgreSQL，每个实例一个 schema；sqlite：各用数据目录）")
    ] = "postgresql+psycopg://127.0.0.1:5432/test",
    as_json: Annotated[bool, typer.Option("--json", help="输出一个 JSON 对象")] = False,
) -> None:
    """城市向省级库每秒推送的事件数（两个本地实例）及推送延迟。"""
    from cert_authority.bench.sync import sync_benchmark

    result = sync_benchmark(licences, seconds, database_url, batch_events)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['events']} events pushed in {result['seconds']} s on {result['database']}: "
        f"{result['events_per_s']} events/s (target ≥ {result['target_events_per_s']})"
    )
    typer.echo(
        f"issue events {result['issue_events_per_s']}/s, revocations {result['revocation_events_per_s']}/s; "
        f"then {result['files_sent']} sealed files in {result['files_seconds']} s ({result['file_mb_per_s']} MB/s)"
    )
    typer.echo(
        f"live: {result['live_licences']} licences, lag p50 {result['lag_p50_ms']} ms, p99 {result['lag_p99_ms']} ms"
    )


@bench_app.command("log")
@friendly_errors
def bench_log(
    leaves: Annotated[int, typer.Option(min=100, help="追加的日志记录数")] = 20000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="追加与取证明的进程数（默认每核一个）")] = (
        os.cpu_count() or 1
    ),
    seconds: Annotated[float, typer.Option(min=0.5, max=60, help="取包含证明的测量秒数")] = 3.0,
    chunk: Annotated[int, typer.Option(min=1, max=10000, help="每个事务写入的日志记录数（批量颁证每块 50）")] = 50,
    database_url: Annotated[str, typer.Option(help="数据库（默认本机 PostgreSQL，在其中新建 schema，测完删除）")] = (
        "postgresql+psycopg://127.0.0.1:5432/test"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="输出一个 JSON 对象")] = False,
) -> None:
    """透明日志：每秒追加（排队并定序）的记录数与提供的包含证明数。"""
    from cert_authority.bench.log import log_benchmark

    result = log_benchmark(leaves, workers, seconds, database_url, chunk=chunk)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['leaves']} leaves from {result['workers']} processes on {result['database']}, "
        f"{result['leaves_per_transaction']} a transaction: "
        f"{result['append_leaves_per_s']} leaves/s appended and sequenced (target ≥ {result['target_append_per_s']}); "
        f"queueing alone {result['queue_leaves_per_s']}/s, sequencing alone {result['sequence_leaves_per_s']}/s, "
        f"{result['heads_signed']} heads signed"
    )
    typer.echo(
        f"inclusion proofs: {result['proofs_per_s']}/s (target ≥ {result['target_proofs_per_s']}); "
        f"{result['proofs_checked']} sampled proofs verified"
    )
    typer.echo(
        f"baselines, same run: SM3 {result['baseline_sm3_per_s']}/s in one process, "
        f"database round trips {result['baseline_db_round_trips_per_s']}/s on one connection"
    )

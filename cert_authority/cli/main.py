"""The `ecas` command line. Every command honours ECAS_DATA_DIR (or --data-dir) and .env."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.audit import audit_app
from cert_authority.cli.batch import issue_batch
from cert_authority.cli.cases import cases_app, duty_rules_app, matters_app, stats
from cert_authority.cli.data import data_app
from cert_authority.cli.holders import holders_app
from cert_authority.cli.keys import keys_app
from cert_authority.cli.licences import issue, licence_app
from cert_authority.cli.log import log_app
from cert_authority.cli.registry import apikey_app, departments_app, types_app
from cert_authority.cli.seals import seals_app
from cert_authority.cli.staff import staff_app
from cert_authority.cli.support import (
    UsageError,
    friendly_errors,
    public_address,
    quiet_closed_pipe,
    settings_from,
)
from cert_authority.cli.support import now as _now
from cert_authority.cli.sync import cities_app, sync_app
from cert_authority.cli.tsa import tsa_app
from cert_authority.cli.verify import verify
from cert_authority.pki.service import CaNames, PkiService
from cert_authority.registry.service import registry_for
from cert_authority.services import licence_services_for, migrated_engine
from cert_authority.settings import Settings
from keys.crl import REASONS

app = typer.Typer(help="ECAS 电子证照与电子印章服务", no_args_is_help=True, add_completion=False)
pki_app = typer.Typer(help="分中心CA：初始化、签发与吊销印章证书、CRL、导出", no_args_is_help=True)
bench_app = typer.Typer(help="性能基准（打印测量值，不是测试）", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(bench_app, name="bench")
app.add_typer(departments_app, name="departments")
app.add_typer(apikey_app, name="apikey")
app.add_typer(types_app, name="types")
app.add_typer(seals_app, name="seals")
app.add_typer(tsa_app, name="tsa")
app.add_typer(licence_app, name="licence")
app.add_typer(holders_app, name="holders")
app.add_typer(staff_app, name="staff")
app.add_typer(matters_app, name="matters")
app.add_typer(cases_app, name="cases")
app.add_typer(duty_rules_app, name="duty-rules")
app.add_typer(sync_app, name="sync")
app.add_typer(cities_app, name="cities")
app.add_typer(data_app, name="data")
app.add_typer(log_app, name="log")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.command("issue")(issue)
app.command("issue-batch")(issue_batch)
app.command("verify")(verify)
app.command("stats")(stats)

__all__ = ["app", "friendly_errors", "main"]


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option(help="数据目录（默认 ./var，或环境变量 ECAS_DATA_DIR）")
    ] = None,
) -> None:
    overrides = {"data_dir": data_dir} if data_dir else {}
    ctx.obj = overrides


def _settings(ctx: typer.Context, new_ok: bool = False) -> Settings:
    return settings_from(ctx, new_ok)


def _pki(settings: Settings) -> PkiService:
    return PkiService(settings, migrated_engine(settings))


def _serial(text: str) -> int:
    try:
        return int(text.removeprefix("0x").removeprefix("0X"), 16)
    except ValueError:
        raise UsageError(f"证书序列号应为十六进制数字，收到 {text!r}") from None


# --- pki -----------------------------------------------------------------------------------
@pki_app.command("init")
@friendly_errors
def pki_init(
    ctx: typer.Context,
    root_name: Annotated[str, typer.Option(help="根CA名称")] = CaNames.root,
    branch_name: Annotated[str, typer.Option(help="分中心CA名称")] = CaNames.branch,
) -> None:
    """Create the provincial root CA and the municipal branch CA under it."""
    pki = _pki(_settings(ctx, new_ok=True))
    root, branch = pki.init(_now(), CaNames(root=root_name, branch=branch_name))
    typer.echo(f"根CA：    {root.subject_text}  序列号 {root.serial_hex}  至 {root.not_after:%Y-%m-%d}")
    typer.echo(f"分中心CA：{branch.subject_text}  序列号 {branch.serial_hex}  至 {branch.not_after:%Y-%m-%d}")
    typer.echo(f"证书目录：{pki.settings.pki_dir}")


@pki_app.command("csr")
@friendly_errors
def pki_csr(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="写入文件（默认打印）")] = None,
    branch_name: Annotated[str, typer.Option(help="分中心CA名称")] = CaNames.branch,
) -> None:
    """Make the branch CA's certificate request for an existing provincial root."""
    pki = _pki(_settings(ctx, new_ok=True))
    request = pki.make_branch_request(_now(), CaNames(branch=branch_name))
    if output:
        output.write_bytes(request.pem)
        typer.echo(f"证书请求已写入 {output}；请提交省级CA签发，再运行 ecas pki install-branch")
    else:
        sys.stdout.write(request.pem.decode())


@pki_app.command("install-branch")
@friendly_errors
def pki_install_branch(
    ctx: typer.Context,
    certificate: Annotated[Path, typer.Argument(help="省级CA签发的分中心证书（PEM/DER）")],
    root: Annotated[Path, typer.Option(help="省级根CA证书（PEM/DER）")],
) -> None:
    """Install the branch certificate returned by the provincial root (checked against our CSR)."""
    pki = _pki(_settings(ctx))
    branch = pki.install_branch(certificate.read_bytes(), root.read_bytes(), _now())
    typer.echo(f"已安装分中心证书：{branch.subject_text}  序列号 {branch.serial_hex}")


@pki_app.command("issue")
@friendly_errors
def pki_issue(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="证书主体名称（部门名称）")],
    uscc: Annotated[str, typer.Option(help="部门统一社会信用代码")],
    years: Annotated[int | None, typer.Option(help="有效期（年）")] = None,
) -> None:
    """Issue a seal certificate for a department; prints its serial number."""
    pki = _pki(_settings(ctx))
    cert = pki.issue_seal_certificate(name=name, uscc=uscc, now=_now(), years=years)
    typer.echo(cert.serial_hex)


@pki_app.command("revoke")
@friendly_errors
def pki_revoke(
    ctx: typer.Context,
    serial: Annotated[str, typer.Argument(help="证书序列号（十六进制）")],
    reason: Annotated[str, typer.Option(help="吊销原因：" + ", ".join(REASONS))] = "unspecified",
) -> None:
    """Revoke a seal certificate; the CRL is re-issued at once."""
    pki = _pki(_settings(ctx))
    record = pki.revoke(_serial(serial), reason, _now())
    typer.echo(f"已吊销 {record.certificate.serial_hex}（{reason}），CRL 已更新")


@pki_app.command("crl")
@friendly_errors
def pki_crl(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="写入 DER 文件")] = Path("crl.der"),
) -> None:
    """Export the branch CA's current CRL (DER)."""
    pki = _pki(_settings(ctx))
    output.write_bytes(pki.current_crl(_now()))
    typer.echo(f"CRL 已写入 {output}")


@pki_app.command("export")
@friendly_errors
def pki_export(ctx: typer.Context, directory: Annotated[Path, typer.Argument(help="导出目录")]) -> None:
    """Write root.pem, branch.pem, crl.der and seal-<serial>.pem for checking with other tools."""
    pki = _pki(_settings(ctx))
    for path in pki.export(directory, _now()):
        typer.echo(str(path))


@pki_app.command("list")
@friendly_errors
def pki_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False
) -> None:
    """List the seal certificates the branch issued, with their status."""
    pki = _pki(_settings(ctx))
    rows = [
        {
            "serial": r.certificate.serial_hex,
            "subject": r.certificate.common_name,
            "uscc": r.certificate.uscc,
            "not_after": r.certificate.not_after.isoformat(),
            "status": r.status().state,
            "reason": r.reason,
        }
        for r in pki.registry.list_issued()
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['serial']}  {row['status']:8}  {row['uscc']}  {row['subject']}  至 {str(row['not_after'])[:10]}"
        )


# --- bench ---------------------------------------------------------------------------------
@bench_app.command("crypto")
@friendly_errors
def bench_crypto(
    seconds: Annotated[float, typer.Option(help="每项测量秒数")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="输出一个 JSON 对象")] = False,
) -> None:
    """SM2 sign/verify per second: ours beside `openssl speed sm2`, same run, one core."""
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
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON：按场景给出 rps、p50_ms、p99_ms、errors")] = False,
) -> None:
    """The service under load: `ecas serve --workers N` on PostgreSQL, driven from another process."""
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
    typer.echo(f"{'场景':18} {'请求数':>8} {'次/秒':>8} {'p50 ms':>8} {'p99 ms':>8} {'错误':>6}  目标")
    for name in (BASELINE, *chosen):
        r = result[name]
        figures = f"{r['requests']:>8} {r['rps']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6}"
        typer.echo(f"{name:20} {figures}  {TARGETS.get(name, '（基线：空请求）' if name == BASELINE else '')}")
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
    """Sealed licences per second end to end (render, seal PDF and OFD, store), beside `openssl speed sm2`."""
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
    """Events per second from a city to a province (two local instances), and the push lag."""
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
    """Transparency log: leaves appended (queued and sequenced) and inclusion proofs served per second."""
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


# --- serve ---------------------------------------------------------------------------------
@app.command("serve")
@friendly_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="工作进程数（多进程时建议使用 PostgreSQL）")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="逐条记录请求")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="数据目录（同全局 --data-dir，例如省级库的目录）")] = None,
) -> None:
    """Run the HTTP service (API docs at /docs); several worker processes share one database."""
    if data_dir is not None:
        ctx.find_root().obj = {**(ctx.find_root().obj or {}), "data_dir": data_dir}
    import uvicorn

    from cert_authority.cli import serve as serve_workers
    from cert_authority.http.access_log import log_config
    from cert_authority.http.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = public_address(_settings(ctx, new_ok=True), host, port)
    os.environ.setdefault("ECAS_BASE_URL", settings.base_url)  # worker processes build their own settings
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log,
                    log_config=log_config())
        return
    # Migrate once here, so that the workers find the schema at its newest revision (each still
    # checks, under a lock: see store.db.migrate).
    migrated_engine(settings).dispose()
    # Each worker process builds its own app from the environment: pass on what the options set.
    os.environ["ECAS_DATA_DIR"] = str(settings.data_dir.resolve())
    options: dict[str, Any] = {"log_level": "info", "access_log": access_log, "log_config": log_config()}
    if serve_workers.available():  # a socket per worker: connections spread evenly (see there)
        serve_workers.serve(workers, host, port, options)
        return
    uvicorn.run(serve_workers.APP, factory=True, workers=workers, host=host, port=port, **options)


@app.command("demo")
@friendly_errors
def demo(
    ctx: typer.Context,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="建好后启动服务")] = True,
    port: Annotated[int, typer.Option(help="端口")] = 8000,
) -> None:
    """Build a local demo authority (idempotent), then serve it on 127.0.0.1."""
    from cert_authority.demo import (
        DEMO_PASSWORD,
        DEMO_STAFF,
        build_demo,
        demo_holders,
        demo_signin_key_path,
        ensure_demo_kek,
    )
    from cert_authority.exchange.province_setup import ensure_province, province_settings

    settings = public_address(_settings(ctx, new_ok=True), "127.0.0.1", port)
    if ensure_demo_kek(settings):
        typer.secho(
            f"演示模式：未设置 ECAS_KEK，已生成演示用密钥加密口令 {settings.demo_kek_path}"
            "（仅供演示；正式部署请设置 ECAS_KEK 并妥善保管）",
            fg=typer.colors.YELLOW,
        )
    engine = migrated_engine(settings)
    pki = PkiService(settings, engine)
    registry = registry_for(settings, engine)
    services = licence_services_for(pki, registry)
    for line in build_demo(pki, registry, _now(), services) or ["演示数据已存在，未做改动"]:
        typer.echo(f"· {line}")
    province_dir, province_lines = ensure_province(pki, _now())
    ensure_demo_kek(province_settings(settings))  # the province is another authority: its own passphrase
    for line in province_lines:
        typer.echo(f"· {line}")
    for record in pki.registry.list_issued():
        cert = record.certificate
        typer.echo(f"  印章证书 {cert.serial_hex}  {record.status().state:8} {cert.uscc}  {cert.common_name}")
    for seal in services.seals.list(CLI_ACTOR):
        typer.echo(f"  电子印章 {seal.id:>3}  {seal.status:9} {seal.es_id or '—'}  {seal.name}")
    for licence_type in registry.list_types():
        count = services.queries.search(CLI_ACTOR, type_code=licence_type.code, page_size=1).total
        typer.echo(
            f"  证照类型 {licence_type.code}  {licence_type.name}（模板第 {licence_type.latest_version} 版，"
            f"已颁发 {count} 份）"
        )
    typer.echo(f"演示账号（密码均为 {DEMO_PASSWORD}）：")
    for code, name in demo_holders():
        typer.echo(f"  持证人  {code}  {name}")
    for member in DEMO_STAFF:
        typer.echo(f"  工作人员 {member.username:8} {member.name}（{member.duty}）")
    typer.echo(
        f"  管理员登录须 SM2 签名：ecas staff sign-challenge --key {demo_signin_key_path(settings)}"
        "（密钥口令同上），粘贴登录页给出的挑战"
    )
    base = settings.base_url
    typer.echo(f"数据目录：{settings.data_dir.resolve()}")
    typer.echo(f"对外地址（写入证书与证照二维码）：{base}")
    typer.echo(f"省级电子证照库（另一实例）：ecas serve --data-dir {province_dir} --port {port + 1}")
    typer.echo(
        f"  推送：ECAS_PROVINCE_URL=http://127.0.0.1:{port + 1} ecas --data-dir {settings.data_dir} "
        "sync push --once --json"
    )
    typer.echo(f"  在省级库核验：ecas --data-dir {province_dir} verify 证照标识 --json")
    if not serve_after:
        return
    typer.echo("打开以下地址：")
    typer.echo(f"  我的证照（手机亮证）  {base}/wallet")
    typer.echo(f"  窗口核验              {base}/counter")
    typer.echo(f"  颁证管理              {base}/console")
    typer.echo(f"  接口文档              {base}/docs   · CRL {base}/pki/crl · 根证书 {base}/pki/root.pem")
    ctx.invoke(serve, ctx=ctx, host="127.0.0.1", port=port, workers=1, access_log=True)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # output after a command returned (click's own), to a closed pipe
        quiet_closed_pipe()
        sys.exit(0)

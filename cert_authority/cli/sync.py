"""`ecas sync ...` (a city pushing to the provincial library) and `ecas cities ...` (province mode)."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from cert_authority.cli.support import UsageError, friendly_errors, option_date, settings_from, writable_file
from cert_authority.cli.support import now as _now
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.exchange.pusher import BATCH_EVENTS, Pusher, PushError
from cert_authority.exchange.reconcile import reconcile
from cert_authority.pki.service import PkiService
from cert_authority.services import migrated_engine
from cert_authority.store.filestore import file_store_for
from keys.errors import KeysError
from keys.x509 import Certificate

sync_app = typer.Typer(help="向省级电子证照库推送变更事件、查看状态、对账", no_args_is_help=True)
cities_app = typer.Typer(help="省级库：登记向本库推送的城市", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="输出 JSON")]


def _pusher(ctx: typer.Context, batch_events: int = BATCH_EVENTS) -> Pusher:
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    return Pusher(engine, file_store_for(settings, engine), PkiService(settings, engine), batch_events=batch_events)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@sync_app.command("push")
@friendly_errors
def sync_push(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="推送当前待推送的全部事件后退出")] = False,
    as_json: JsonOption = False,
    batch_events: Annotated[int, typer.Option(min=1, max=1000, help="每批最多事件数")] = BATCH_EVENTS,
) -> None:
    """按序号分批推送变更事件（签名、至少一次、失败指数退避）；不带 --once 时持续运行。"""
    pusher = _pusher(ctx, batch_events)
    if once:
        try:
            result = pusher.push_once()
        except PushError as exc:
            if as_json:
                _echo_json(pusher.status() | {"error": str(exc)})
            else:
                typer.secho(f"错误：{exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        if as_json:
            _echo_json(result.to_dict())
        else:
            typer.echo(f"已推送 {result.sent} 个事件，省级库已确认到序号 {result.acked}，待推送 {result.pending}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(f"持续推送到 {pusher.target}（Ctrl+C 停止）")
    pusher.run(lambda: stopping)


@sync_app.command("status")
@friendly_errors
def sync_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """已确认的序号、积压（事件数与秒数）和失败次数。"""
    status = _pusher(ctx).status()
    if as_json:
        _echo_json(status)
        return
    typer.echo(
        f"省级库 {status['province_url']}：已确认 {status['acked']} / 最新 {status['latest']}，"
        f"积压 {status['lag_events']} 个事件（{status['lag_seconds']} 秒），连续失败 {status['failures']} 次"
    )
    if status["last_error"]:
        typer.echo(f"最近错误：{status['last_error']}")


@sync_app.command("reconcile")
@friendly_errors
def sync_reconcile(
    ctx: typer.Context,
    from_day: Annotated[str | None, typer.Option("--from", help="起始日期 YYYY-MM-DD（默认最早的事件）")] = None,
    to_day: Annotated[str | None, typer.Option("--to", help="截止日期 YYYY-MM-DD（默认今天）")] = None,
    as_json: JsonOption = False,
) -> None:
    """与省级库按日核对事件数与 SM3，列出差异并补发省级库缺少的事件。"""
    try:
        result = reconcile(_pusher(ctx), option_date(from_day, "--from"), option_date(to_day, "--to"))
    except PushError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        _echo_json(result)
        return
    for day in result["days"]:
        mark = "一致" if day["match"] else "不一致"
        typer.echo(f"{day['day']}  本市 {day['city_count']:>6}  省级库 {day['province_count']:>6}  {mark}")
    typer.echo(f"补发 {result['resent']} 个事件")


@sync_app.command("certificate")
@friendly_errors
def sync_certificate(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="写入的 PEM 文件", callback=writable_file)],
) -> None:
    """导出本市服务证书与分中心CA证书（PEM），供省级库登记（ecas cities add）。"""
    settings = settings_from(ctx)
    signer = PkiService(settings, migrated_engine(settings)).service_signer(_now())
    service, branch, _root = signer.certificate_chain
    output.write_bytes(service.pem + branch.pem)
    typer.echo(f"已写入 {output}（服务证书 {service.serial_hex}，{service.subject_text}）")


@cities_app.command("add")
@friendly_errors
def cities_add(
    ctx: typer.Context,
    uscc: Annotated[str, typer.Option(help="城市电子证照机构的统一社会信用代码（服务证书中的代码）")],
    name: Annotated[str, typer.Option(help="城市名称")],
    certificate: Annotated[Path, typer.Option(help="城市的服务证书与分中心CA证书（PEM，ecas sync certificate 导出）")],
    root: Annotated[Path | None, typer.Option(help="省级根CA证书（默认 ECAS_PROVINCE_ROOT）")] = None,
    issuer_area: Annotated[
        list[str] | None,
        typer.Option(help="城市可报送其证照的颁证单位所在行政区划代码前缀（可重复；默认城市代码中的前 4 位）"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """登记城市：其证书须链接到省级根证书；此后接收其签名的批次，只收其行政区划内颁证单位的证照。"""
    settings = settings_from(ctx)
    root_path = root or settings.province_root
    if root_path is None:
        raise UsageError("请给出 --root 或设置 ECAS_PROVINCE_ROOT（省级根CA证书）")
    try:
        root_certificate = Certificate.load(root_path.read_bytes())
    except KeysError as exc:
        raise UsageError(f"省级根证书 {root_path} 无法读取：{exc}") from None
    engine = migrated_engine(settings)
    city = ProvinceLibrary(engine, file_store_for(settings, engine)).register_city(
        uscc, name, certificate.read_bytes(), root_certificate, issuer_area or ()
    )
    if as_json:
        _echo_json(city.to_dict())
    else:
        typer.echo(f"已登记城市 {city.name}（{city.uscc}），服务证书 {city.certificate_serial}")


@cities_app.command("list")
@friendly_errors
def cities_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """列出已登记的城市及其已确认的序号。"""
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    cities = ProvinceLibrary(engine, file_store_for(settings, engine)).list_cities()
    if as_json:
        _echo_json([city.to_dict() for city in cities])
        return
    for city in cities:
        last = f"{city.last_batch_at:%Y-%m-%d %H:%M}" if city.last_batch_at else "—"
        areas = "、".join(city.issuer_areas)
        typer.echo(f"{city.uscc}  {city.name}  行政区划 {areas}  已确认 {city.acked_seq}  最近批次 {last}")

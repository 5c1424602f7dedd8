"""`ecas serve` and `ecas demo`: the HTTP service, and a local demo authority served at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import friendly_errors, public_address, settings_from
from cert_authority.cli.support import now as _now
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import registry_for
from cert_authority.services import licence_services_for, migrated_engine
from cert_authority.settings import Settings


def _settings(ctx: typer.Context, new_ok: bool = False) -> Settings:
    return settings_from(ctx, new_ok)


# --- serve ---------------------------------------------------------------------------------
@friendly_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="工作进程数（多进程时建议使用 PostgreSQL）")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="逐条记录请求")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="数据目录（同全局 --data-dir，例如省级库的目录）")] = None,
) -> None:
    """启动 HTTP 服务（接口文档在 /docs）；多个工作进程共用一个数据库。"""
    if data_dir is not None:
        ctx.find_root().obj = {**(ctx.find_root().obj or {}), "data_dir": data_dir}
    import uvicorn

    from cert_authority.cli import serve as serve_workers
    from cert_authority.http.access_log import log_config
    from cert_authority.http.app import create_app

    logging.basicConfig(level=logging.INFO, format=serve_workers.LOG_FORMAT)
    settings = public_address(_settings(ctx, new_ok=True), host, port)
    os.environ.setdefault("ECAS_BASE_URL", settings.base_url)  # worker processes build their own settings
    if workers == 1:
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="info", access_log=access_log, log_config=log_config()
        )
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


@friendly_errors
def demo(
    ctx: typer.Context,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="建好后启动服务")] = True,
    port: Annotated[int, typer.Option(help="端口")] = 8000,
) -> None:
    """建立本地演示机构（可重复运行），然后在 127.0.0.1 上启动服务。"""
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
    if base != os.environ.get("ECAS_BASE_URL", Settings.model_fields["base_url"].default):
        # Commands run beside it take their address from the environment, not from this option.
        typer.echo(f"  另一终端运行 ecas 命令前请先 export ECAS_BASE_URL={base}（命令生成的二维码与链接才指向本服务）")
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

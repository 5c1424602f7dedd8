"""`ecas data encrypt|encrypt-files|status`: personal data at rest (SM4-GCM, issue 25 item 2): the
database's rows and the file store's files."""

from __future__ import annotations

from typing import Annotated

import typer

from cert_authority.cli.support import UsageError, friendly_errors, settings_from
from cert_authority.data_encryption import DEFAULT_BATCH, encrypt_existing, plain_rows
from cert_authority.services import migrated_engine, personal_data_for
from cert_authority.store.filestore import convert_plain_files, file_store_for, plain_file_count

data_app = typer.Typer(help="个人信息加密存储（SM4-GCM）", no_args_is_help=True)

TABLE_NAMES = {
    "licence": "证照",
    "holder_account": "持证人账号",
    "standing_authorisation": "授权用证",
    "service_case": "办件",
    "province_licence": "省级库证照",
    "province_event": "省级库事件",
}


@data_app.command("encrypt")
@friendly_errors
def data_encrypt(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option(help="每批加密的行数（每批一个事务）")] = DEFAULT_BATCH,
) -> None:
    """加密 0016、0017 版迁移以前写入的个人信息（含省级库收存的各市证照）。

    分批进行；中断后再次运行即从中断处继续。请先停止服务。"""
    if not 1 <= batch_size <= 100_000:
        raise UsageError("--batch-size 应在 1–100000 之间")
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    personal = personal_data_for(settings)

    def progress(table: str, done: int, total: int) -> None:
        typer.echo(f"{TABLE_NAMES[table]}：已加密 {done}/{total}")

    try:
        sealed = encrypt_existing(engine, personal, batch_size, progress)
    finally:
        engine.dispose()
    if not any(sealed.values()):
        typer.echo("没有需要加密的明文个人信息")
        return
    typer.echo("完成：" + "，".join(f"{TABLE_NAMES[t]} {n} 行" for t, n in sealed.items() if n))


@data_app.command("encrypt-files")
@friendly_errors
def data_encrypt_files(
    ctx: typer.Context,
    batch_size: Annotated[int, typer.Option(help="每批加密的文件数（每批写入后才继续）")] = 200,
) -> None:
    """加密文件库中加密以前写入的明文文件（证照文件、照片、上传的批量文件）；文件库在数据库时，
    同时把本机数据目录中的旧文件加密后存入数据库。可在服务运行时进行；中断后再次运行即可继续。"""
    if not 1 <= batch_size <= 100_000:
        raise UsageError("--batch-size 应在 1–100000 之间")
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    try:
        store = file_store_for(settings, engine)

        def progress(seen: int, sealed: int) -> None:
            typer.echo(f"文件库：已检查 {seen} 个文件，已加密 {sealed} 个")

        seen, sealed = convert_plain_files(store, batch_size=batch_size, progress=progress)
    finally:
        engine.dispose()
    if not sealed:
        typer.echo(f"没有需要加密的明文文件（共 {seen} 个文件）")
        return
    typer.echo(f"完成：文件库加密 {sealed} 个文件（共 {seen} 个）")


@data_app.command("status")
@friendly_errors
def data_status(ctx: typer.Context) -> None:
    """各表仍为明文的个人信息行数与文件库中的明文文件数（全为 0：已全部加密）。"""
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    try:
        counts = plain_rows(engine)
        files, plain_files = plain_file_count(file_store_for(settings, engine))
    finally:
        engine.dispose()
    for table, count in counts.items():
        typer.echo(f"{TABLE_NAMES[table]}：明文 {count} 行")
    typer.echo(f"文件库（{settings.effective_file_store}）：明文 {plain_files} 个文件（共 {files} 个）")

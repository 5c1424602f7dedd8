"""`ecas keys list|rewrap|rotate|to-database`: private keys at rest (SM4), where they are kept, and the
data-encryption keys under the KEK."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, now, settings_from
from cert_authority.services import migrated_engine
from cert_authority.settings import Settings
from cert_authority.store.audit import audit_row
from cert_authority.store.data_keys import FILES, PII, RECORDS, ring_storage
from cert_authority.store.keys_db import DatabaseKeyFiles, key_store_for
from keys.datakeys import DataKeyRing
from keys.errors import WrongPassphraseError
from keys.keystore import KeyDirectory, SoftwareKeyStore

keys_app = typer.Typer(help="密钥：私钥静态加密（SM4）、数据加密密钥的轮换", no_args_is_help=True)
PURPOSES = (RECORDS, PII, FILES)


def _audit(settings: Settings, action: str, target: str, detail: dict[str, object]) -> None:
    with Session(migrated_engine(settings)) as session:
        session.add(audit_row(CLI_ACTOR, action, target, now(), detail=detail))
        session.commit()


def _key_store(settings: Settings) -> SoftwareKeyStore:
    return key_store_for(settings, migrated_engine(settings))


@keys_app.command("list")
@friendly_errors
def keys_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False) -> None:
    """列出私钥文件（及其加密算法）和数据加密密钥的版本。"""
    settings = settings_from(ctx)
    store = _key_store(settings)
    private: list[dict[str, object]] = [{"label": label, "cipher": store.cipher(label)} for label in store.labels()]
    ring = DataKeyRing(ring_storage(settings), settings.require_kek())
    data = [{"purpose": p, "version": v, "created_at": c} for p, v, c in ring.versions()]
    if as_json:
        typer.echo(json.dumps({"private_keys": private, "data_keys": data}, ensure_ascii=False))
        return
    for item in private:
        typer.echo(f"私钥 {item['label']}\t{item['cipher']}")
    for item in data:
        typer.echo(f"数据密钥 {item['purpose']} v{item['version']}\t{item['created_at']}")


@keys_app.command("rewrap")
@friendly_errors
def keys_rewrap(
    ctx: typer.Context,
    old_kek_env: Annotated[
        str | None, typer.Option(help="更换 ECAS_KEK 时：保存旧口令的环境变量名（新口令在 ECAS_KEK）")
    ] = None,
) -> None:
    """将私钥文件原地改为 SM4-CBC 加密（PKCS#8 PBES2），可中断后重跑；同时可更换 KEK 口令。"""
    settings = settings_from(ctx)
    old = None
    if old_kek_env is not None:
        value = os.environ.get(old_kek_env)
        if not value:
            raise UsageError(f"环境变量 {old_kek_env} 未设置（应为旧的 KEK 口令）")
        old = value.encode()
    store = _key_store(settings)
    changed = [label for label in store.labels() if store.rewrap(label, old_passphrase=old)]
    storage = ring_storage(settings)  # the file on SQLite, the shared database row on PostgreSQL
    if not isinstance(storage, Path) or storage.exists():
        try:
            DataKeyRing(storage, settings.require_kek())
        except WrongPassphraseError:
            if old is None:
                raise
            DataKeyRing(storage, old).rewrap(settings.require_kek())
            changed.append("data-keys")
    _audit(settings, "keys_rewrap", "keys", {"rewrapped": changed, "kek_changed": old is not None})
    typer.echo(f"已重新加密 {len(changed)} 个密钥文件（SM4-CBC）；其余已是当前格式")


@keys_app.command("rotate")
@friendly_errors
def keys_rotate(
    ctx: typer.Context, purpose: Annotated[str, typer.Argument(help=f"用途：{'、'.join(PURPOSES)}")]
) -> None:
    """为一种用途新增一版数据加密密钥并启用；旧版本保留以读取已有数据，无需重新签发任何证书或证照。"""
    if purpose not in PURPOSES:
        raise UsageError(f"未知的密钥用途 {purpose!r}，可选：{'、'.join(PURPOSES)}")
    settings = settings_from(ctx)
    key = DataKeyRing(ring_storage(settings), settings.require_kek()).rotate(purpose, now=now())
    _audit(settings, "keys_rotate", f"data-key:{purpose}", {"purpose": purpose, "version": key.version})
    typer.echo(f"已启用数据加密密钥 {purpose} 第 {key.version} 版（旧版本保留用于读取）")


@keys_app.command("to-database")
@friendly_errors
def keys_to_database(ctx: typer.Context) -> None:
    """把本机 keys/ 目录中的私钥文件（仍为 KEK 下的 SM4 加密形式）复制到数据库，供多主机共用；可重复运行。"""
    settings = settings_from(ctx)
    if settings.effective_file_store != "database":
        raise UsageError("只有 ECAS_FILE_STORE=database（PostgreSQL 上的默认）时私钥才保存在数据库中")
    folder = KeyDirectory(settings.key_dir)
    files = DatabaseKeyFiles(migrated_engine(settings))
    local = SoftwareKeyStore(folder, settings.require_kek())
    shared = SoftwareKeyStore(files, settings.require_kek())
    copied = []
    for label in folder.labels():
        public_key = local.public_key(label)  # opens under this KEK: nothing unreadable goes in
        data = folder.read(label)
        assert data is not None
        if files.stored(label) is None and files.copy_in(label, data):
            copied.append(label)
        elif shared.public_key(label) != public_key:
            raise UsageError(f"数据库中已有标签为 {label} 的另一个私钥：未复制，请核对")
    _audit(settings, "keys_to_database", "keys", {"copied": copied})
    typer.echo(f"已复制 {len(copied)} 个私钥文件到数据库（表 stored_key）；本机文件可在各主机确认可用后删除")

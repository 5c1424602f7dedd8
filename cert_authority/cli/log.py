"""`ecas log`: the transparency log from the command line.

    ecas log head [-o FILE] [--size N]     sequence what is queued, print (or save) the signed head
    ecas log integrate                     sequence what is queued now
    ecas log export-tiles DIR              the tree as static tlog-tiles files (checkpoint, tile/...)
    ecas log backfill                      log the licences recorded before the log existed
    ecas log verify --from OLD --to NEW    witness: both heads' signatures, their consistency and,
                                           on the authority's own database, the leaves behind NEW

A witness keeps the last head it checked (a file saved from `GET /log/head` or `ecas log head`)
and checks each new one against it: a log that rewrote its past cannot show a consistent proof.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import text

from cert_authority.cli.support import UsageError, friendly_errors, now, settings_from, writable_file
from cert_authority.issuing.log_leaves import backfill_log
from cert_authority.services import LicenceServices, licence_services
from cert_authority.transparency.log import export_tiles, leaf_labels
from keys.errors import InvalidCertificateError
from keys.x509 import Certificate
from verification.merkle import SM3_TREE, verify_consistency
from verification.transparency import LeafFormatError, SignedTreeHead, decode_hashes, decode_leaf

log_app = typer.Typer(help="透明日志：签名树头、补记、见证核验", no_args_is_help=True)


def _head_file(path: Path) -> tuple[SignedTreeHead, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise LeafFormatError("not a JSON object")
        return SignedTreeHead.from_json(data), data
    except (ValueError, LeafFormatError) as exc:
        raise UsageError(f"{path} 不是签名树头文件（GET /log/head 的 JSON）：{exc}") from None


@log_app.command("head")
@friendly_errors
def head(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="写入文件（见证时作为 --from/--to）", callback=writable_file)
    ] = None,
    size: Annotated[int | None, typer.Option(min=1, help="取保存的、树大小为 N 的签名树头")] = None,
) -> None:
    """签入排队的日志记录，输出最新（或指定大小）的签名树头（JSON）。"""
    services = licence_services(settings_from(ctx))
    services.log.integrate()
    found = services.log.latest_head() if size is None else services.log.head_at(size)
    if found is None:
        raise UsageError("透明日志尚无签名树头" if size is None else f"没有大小为 {size} 的签名树头")
    document = json.dumps(services.log.published(found), ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(document)
    else:
        output.write_text(document + "\n", encoding="utf-8")
        typer.echo(f"树头（大小 {found.tree_size}，树根 {found.root_hash.hex()[:16]}…）已写入 {output}")


@log_app.command("export-tiles")
@friendly_errors
def export_tiles_command(
    ctx: typer.Context, directory: Annotated[Path, typer.Argument(help="目标目录（可由任何网站服务器或 CDN 发布）")]
) -> None:
    """把日志导出为静态瓦片（C2SP tlog-tiles：checkpoint、tile/...），只写新增的文件。"""
    services = licence_services(settings_from(ctx))
    services.log.integrate()
    exported = export_tiles(services.log, directory)
    if exported is None:
        raise UsageError("透明日志尚无签名树头")
    typer.echo(f"已导出大小 {exported.tree_size} 的树到 {directory}")


@log_app.command("integrate")
@friendly_errors
def integrate(ctx: typer.Context) -> None:
    """把排队的日志记录签入树中，签发新的树头（服务运行时每秒自动进行）。"""
    services = licence_services(settings_from(ctx))
    signed = services.log.integrate()
    typer.echo(
        "没有排队的记录" if signed is None else f"新树头：大小 {signed.tree_size}，树根 {signed.root_hash.hex()}"
    )


@log_app.command("backfill")
@friendly_errors
def backfill(ctx: typer.Context) -> None:
    """补记日志启用前颁发的证照（颁发、变更、吊销、注销），只补缺少的，可重复运行。"""
    services = licence_services(settings_from(ctx))
    added = backfill_log(services.log.engine, services.personal, now())
    services.log.integrate()
    typer.echo(f"补记 {added} 条")


@log_app.command("verify")
@friendly_errors
def verify(
    ctx: typer.Context,
    old_file: Annotated[Path, typer.Option("--from", help="此前见证过的签名树头文件")],
    new_file: Annotated[Path, typer.Option("--to", help="新的签名树头文件")],
    certificate_file: Annotated[
        Path | None, typer.Option("--certificate", help="日志服务证书（PEM，默认：本机构的服务证书）")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="从该服务取一致性证明（如 https://ecas.example.cn），默认：本机数据库")
    ] = None,
) -> None:
    """见证：核验两个树头的 SM2 签名及其一致性；用本机数据库时，再用全部日志记录重算新树根。"""
    old, _ = _head_file(old_file)
    new, _ = _head_file(new_file)
    services = None if url is not None and certificate_file is not None else licence_services(settings_from(ctx))
    certificate = _certificate(certificate_file, services)
    problems: list[str] = []
    for name, signed in (("--from", old), ("--to", new)):
        if signed.verify(certificate):
            typer.echo(f"✓ {name} 树头签名有效（大小 {signed.tree_size}，{signed.time:%Y-%m-%d %H:%M:%S} UTC）")
        else:
            problems.append(f"{name} 树头签名无效")
    if old.origin != new.origin:
        problems.append(f"两个树头属于不同的日志（{old.origin}、{new.origin}）")
    if old.tree_size > new.tree_size:
        problems.append(f"--from 的树（{old.tree_size}）比 --to 的（{new.tree_size}）大")
    if not problems:
        proof = _consistency(old, new, url, services)
        if verify_consistency(SM3_TREE, old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof):
            typer.echo(f"✓ 一致性证明成立：{old.tree_size} → {new.tree_size}，日志只追加、未改写")
        else:
            problems.append(
                f"一致性证明不成立：大小 {old.tree_size} 的树不是大小 {new.tree_size} 的树的前缀（日志被改写）"
            )
    if not problems and url is None and services is not None:
        problems += _audit_leaves(services, new)
    for problem in problems:
        typer.secho(f"✗ {problem}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1 if problems else 0)


def _certificate(path: Path | None, services: LicenceServices | None) -> Certificate:
    if path is None:
        assert services is not None
        return services.log.pki.service_signer(now()).certificate_chain[0]
    try:
        return Certificate.load(path.read_bytes())
    except InvalidCertificateError as exc:
        raise UsageError(f"{path} 不是证书：{exc}") from None


def _consistency(
    old: SignedTreeHead, new: SignedTreeHead, url: str | None, services: LicenceServices | None
) -> list[bytes]:
    if old.tree_size == new.tree_size or old.tree_size == 0:
        return []
    if url is None:
        assert services is not None
        return services.log.consistency(old.tree_size, new.tree_size)
    if not url.startswith(("http://", "https://")):
        raise UsageError("--url 应以 http:// 或 https:// 开头")
    query = urllib.parse.urlencode({"from": old.tree_size, "to": new.tree_size})
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/log/consistency?{query}", timeout=30) as response:  # noqa: S310
            return decode_hashes(json.loads(response.read())["hashes"])
    except (urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"取一致性证明失败：{exc}") from None


def _audit_leaves(services: LicenceServices, head: SignedTreeHead) -> list[str]:
    """The database's leaves, read afresh, must rebuild the head's root: a leaf removed, added
    out of turn or edited in `log_entry` changes it. And each must be filed under the identifier
    and event it holds: a verification finds a licence's leaves by those columns, so a revocation
    refiled under another identifier would go unseen there."""
    with services.log.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT leaf_index, leaf, identifier, event FROM log_entry WHERE leaf_index < :size ORDER BY leaf_index"
            ),
            {"size": head.tree_size},
        ).all()
    indices = [row.leaf_index for row in rows]
    if indices != list(range(head.tree_size)):
        missing = sorted(set(range(head.tree_size)) - set(indices))[:5]
        return [f"数据库中的日志记录不全：树有 {head.tree_size} 条，库中 {len(rows)} 条（缺第 {missing} 条等）"]
    root = SM3_TREE.root([SM3_TREE.leaf(bytes(row.leaf)) for row in rows])
    if root != head.root_hash:
        return ["数据库中的日志记录重算出的树根与 --to 树头不符：日志记录被改动"]
    typer.echo(f"✓ 数据库中的 {head.tree_size} 条日志记录重算出 --to 树头的树根")
    refiled = [row.leaf_index for row in rows if _filed_as(bytes(row.leaf)) != (row.identifier, row.event)]
    if refiled:
        return [f"数据库中第 {refiled[:5]} 条日志记录登记的证照标识或事件与记录内容不符：可能借此隐藏吊销或注销"]
    return []


def _filed_as(leaf: bytes) -> tuple[str, str] | None:
    try:
        return leaf_labels(decode_leaf(leaf))
    except LeafFormatError:
        return None

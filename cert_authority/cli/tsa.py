"""`ecas tsa ...`: time-stamp a file for scripts, and export the TSA's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import UsageError, friendly_errors, now, settings_from, writable_file
from cert_authority.pki.service import PkiService
from cert_authority.services import migrated_engine
from cert_authority.timestamping.authority import TimeStampAuthority
from keys.oids import SM3
from seals.timestamp import HASH_ALGORITHMS, SHA256, StampRequest, granted_reply, parse_token

tsa_app = typer.Typer(help="时间戳服务（RFC 3161 / GB/T 20520，SM2/SM3）", no_args_is_help=True)
DIGESTS = {"sm3": SM3, "sha256": SHA256}


def _authority(ctx: typer.Context) -> TimeStampAuthority:
    settings = settings_from(ctx)
    engine = migrated_engine(settings)
    return TimeStampAuthority(PkiService(settings, engine), engine)


@tsa_app.command("stamp")
@friendly_errors
def tsa_stamp(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="要加盖时间戳的文件")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="时间戳应答（DER TimeStampResp，.tsr）", callback=writable_file)
    ],
    digest: Annotated[str, typer.Option("--digest", help="sm3 或 sha256")] = "sm3",
) -> None:
    """为文件的摘要加盖时间戳，写出时间戳应答（可用 `openssl ts -reply -in 文件.tsr -text` 查看）。"""
    if digest not in DIGESTS:
        raise UsageError(f"--digest 应为 {' 或 '.join(DIGESTS)}，收到 {digest!r}")
    if not file.is_file():
        raise UsageError(f"文件不存在：{file}")
    algorithm = DIGESTS[digest]
    tsa = _authority(ctx)
    [token] = tsa.stamp([StampRequest(algorithm, HASH_ALGORITHMS[algorithm][1](file.read_bytes()))], now())
    output.write_bytes(granted_reply(token))
    stamped = parse_token(token)
    tsa.audit(CLI_ACTOR, stamped.serial, algorithm, stamped.hashed_message, now())
    typer.echo(f"时间戳序列号 {stamped.serial:X}，时间 {stamped.gen_time:%Y-%m-%d %H:%M:%S}Z → {output}")


@tsa_app.command("certificate")
@friendly_errors
def tsa_certificate(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="写出 PEM 证书", callback=writable_file)],
) -> None:
    """写出时间戳服务的证书（PEM；首次使用时由分中心CA签发）。"""
    output.write_bytes(_authority(ctx).certificate(now()).pem)
    typer.echo(f"时间戳服务证书 → {output}")

"""`ecas pki ...`: the municipal branch CA under the provincial root, and the seal certificates it issues."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.cli.support import UsageError, friendly_errors, settings_from, writable_file
from cert_authority.cli.support import now as _now
from cert_authority.pki.service import CaNames, PkiService
from cert_authority.services import migrated_engine
from cert_authority.settings import Settings
from keys.crl import REASONS

pki_app = typer.Typer(help="分中心CA：初始化、签发与吊销印章证书、CRL、导出", no_args_is_help=True)


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
    """建立省级根CA及其下的市级分中心CA。"""
    pki = _pki(_settings(ctx, new_ok=True))
    root, branch = pki.init(_now(), CaNames(root=root_name, branch=branch_name))
    typer.echo(f"根CA：    {root.subject_text}  序列号 {root.serial_hex}  至 {root.not_after:%Y-%m-%d}")
    typer.echo(f"分中心CA：{branch.subject_text}  序列号 {branch.serial_hex}  至 {branch.not_after:%Y-%m-%d}")
    typer.echo(f"证书目录：{pki.settings.pki_dir}")


@pki_app.command("csr")
@friendly_errors
def pki_csr(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="写入文件（默认打印）", callback=writable_file)
    ] = None,
    branch_name: Annotated[str, typer.Option(help="分中心CA名称")] = CaNames.branch,
) -> None:
    """为已有的省级根CA生成分中心CA的证书请求（CSR）。"""
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
    """安装省级根CA签回的分中心证书（与本机的证书请求核对）。"""
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
    """为部门签发印章证书，打印证书序列号。"""
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
    """吊销印章证书，并立即重新签发 CRL。"""
    pki = _pki(_settings(ctx))
    record = pki.revoke(_serial(serial), reason, _now())
    typer.echo(f"已吊销 {record.certificate.serial_hex}（{reason}），CRL 已更新")


@pki_app.command("crl")
@friendly_errors
def pki_crl(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="写入 DER 文件", callback=writable_file)] = Path(
        "crl.der"
    ),
) -> None:
    """导出分中心CA当前的 CRL（DER）。"""
    pki = _pki(_settings(ctx))
    output.write_bytes(pki.current_crl(_now()))
    typer.echo(f"CRL 已写入 {output}")


@pki_app.command("export")
@friendly_errors
def pki_export(ctx: typer.Context, directory: Annotated[Path, typer.Argument(help="导出目录")]) -> None:
    """写出 root.pem、branch.pem、crl.der 与 seal-<序列号>.pem，供其他工具核验。"""
    pki = _pki(_settings(ctx))
    for path in pki.export(directory, _now()):
        typer.echo(str(path))


@pki_app.command("list")
@friendly_errors
def pki_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON 输出")] = False) -> None:
    """列出分中心签发的印章证书及其状态。"""
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

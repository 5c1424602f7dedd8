"""`ecas staff add|disable|enable|set-role|reset-password|unlock|keygen|register-key|revoke-key|
sign-challenge`: department staff accounts for the web console and the counter page, and their SM2
sign-in keys. Every change is audited (access/staff.py, access/signin.py)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated

import typer

from cert_authority.access.signin import PROTOCOL, SignInKeys
from cert_authority.access.staff import StaffAccounts
from cert_authority.actors import CLI_ACTOR, ROLE_NAMES
from cert_authority.cli.support import UsageError, friendly_errors, settings_from
from cert_authority.services import migrated_engine
from keys.keystore import create_key_file, open_key_file

staff_app = typer.Typer(help="部门工作人员账号（颁证管理与窗口核验页面登录）", no_args_is_help=True)


@staff_app.command("add")
@friendly_errors
def staff_add(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="登录用户名（小写字母、数字）")],
    name: Annotated[str, typer.Option(help="姓名")],
    role: Annotated[str, typer.Option(help="角色：admin、issuer（颁证）、user（用证/窗口核验）、auditor")],
    department: Annotated[str | None, typer.Option(help="所属部门统一社会信用代码（管理员不填）")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取密码（脚本用）")] = False,
) -> None:
    """为部门工作人员建立网页登录账号（密码以 argon2id 散列保存）。"""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    accounts = StaffAccounts(migrated_engine(settings_from(ctx)))
    member = accounts.create(username, name, role, department, password, actor=CLI_ACTOR)
    where = f"，{member.department_name}" if member.department_name else ""
    typer.echo(f"已建立工作人员账号：{member.username}（{member.name}，{ROLE_NAMES[member.role]}{where}）")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("新密码", hide_input=True, confirmation_prompt=True))


def _accounts(ctx: typer.Context) -> StaffAccounts:
    return StaffAccounts(migrated_engine(settings_from(ctx)))


@staff_app.command("disable")
@friendly_errors
def staff_disable(ctx: typer.Context, username: Annotated[str, typer.Argument(help="登录用户名")]) -> None:
    """停用账号：立即退出其所有登录，不能再登录（记入审计）。"""
    member = _accounts(ctx).set_disabled(CLI_ACTOR, username, True)
    typer.echo(f"已停用账号 {member.username}")


@staff_app.command("enable")
@friendly_errors
def staff_enable(ctx: typer.Context, username: Annotated[str, typer.Argument(help="登录用户名")]) -> None:
    """重新启用已停用的账号（记入审计）。"""
    member = _accounts(ctx).set_disabled(CLI_ACTOR, username, False)
    typer.echo(f"已启用账号 {member.username}")


@staff_app.command("set-role")
@friendly_errors
def staff_set_role(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="登录用户名")],
    role: Annotated[str, typer.Option(help="新角色：admin、issuer、user、auditor")],
    department: Annotated[str | None, typer.Option(help="新所属部门统一社会信用代码（管理员不填）")] = None,
) -> None:
    """改变账号的角色或所属部门：其所有登录随即失效（记入审计，含原角色和部门）。"""
    member = _accounts(ctx).change_role(CLI_ACTOR, username, role, department)
    where = f"，{member.department_name}" if member.department_name else ""
    typer.echo(f"账号 {member.username} 现为{ROLE_NAMES[member.role]}{where}")


@staff_app.command("reset-password")
@friendly_errors
def staff_reset_password(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="登录用户名")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取新密码（脚本用）")] = False,
) -> None:
    """重设账号密码：其所有登录随即失效（审计只记重设这件事，不记密码）。"""
    member = _accounts(ctx).reset_password(CLI_ACTOR, username, _password(password_stdin))
    typer.echo(f"已重设 {member.username} 的密码")


@staff_app.command("unlock")
@friendly_errors
def staff_unlock(ctx: typer.Context, username: Annotated[str, typer.Argument(help="登录用户名")]) -> None:
    """清除该账号的密码错误计数（各地址的等待随之解除；记入审计）。"""
    StaffAccounts(migrated_engine(settings_from(ctx))).unlock(CLI_ACTOR, username)
    typer.echo(f"已解除 {username.strip().lower()} 的登录限制")


def _passphrase(from_stdin: bool, confirm: bool) -> bytes:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = typer.prompt("密钥文件口令", hide_input=True, confirmation_prompt=confirm)
    if len(value) < 8:
        raise UsageError("密钥文件口令至少 8 个字符")
    return value.encode()


@staff_app.command("keygen")
@friendly_errors
def staff_keygen(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="登录用户名")],
    out: Annotated[Path, typer.Option("--out", help="新密钥文件（SM4 加密的 PKCS#8，不会覆盖已有文件）")],
    label: Annotated[str, typer.Option(help="密钥名称")] = "软件密钥",
    passphrase_stdin: Annotated[bool, typer.Option("--passphrase-stdin", help="从标准输入读取口令")] = False,
) -> None:
    """生成签名登录用的 SM2 软件密钥文件（演示用；正式使用 USB Key）并为该账号登记其公钥。"""
    passphrase = _passphrase(passphrase_stdin, confirm=True)
    if out.exists():
        raise UsageError(f"{out} 已存在，不会覆盖")
    public = create_key_file(out, passphrase)
    try:
        fingerprint = _signin(ctx).register(CLI_ACTOR, username, public.to_der(), label)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    typer.echo(f"已生成密钥文件 {out} 并为 {username.strip().lower()} 登记公钥（SM3 指纹 {fingerprint}）")


@staff_app.command("register-key")
@friendly_errors
def staff_register_key(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="登录用户名")],
    public_key: Annotated[Path, typer.Argument(help="SM2 公钥文件（PEM 或 DER，如 USB Key 导出的）")],
    label: Annotated[str, typer.Option(help="密钥名称")] = "USB Key",
) -> None:
    """为账号登记一个 SM2 公钥，用于签名登录（管理员必须；其他人员登记后也须签名登录）。"""
    fingerprint = _signin(ctx).register(CLI_ACTOR, username, public_key.read_bytes(), label)
    typer.echo(f"已为 {username.strip().lower()} 登记公钥（SM3 指纹 {fingerprint}）")


@staff_app.command("revoke-key")
@friendly_errors
def staff_revoke_key(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="登录用户名")],
    fingerprint: Annotated[str, typer.Argument(help="公钥的 SM3 指纹")],
) -> None:
    """注销账号的一个签名登录公钥（如 USB Key 遗失）。"""
    _signin(ctx).revoke(CLI_ACTOR, username, fingerprint)
    typer.echo(f"已注销 {username.strip().lower()} 的公钥 {fingerprint}")


@staff_app.command("sign-challenge")
@friendly_errors
def staff_sign_challenge(
    key: Annotated[Path, typer.Option("--key", help="签名登录密钥文件")],
    passphrase_stdin: Annotated[bool, typer.Option("--passphrase-stdin", help="从标准输入第一行读取口令")] = False,
) -> None:
    """用密钥文件签名登录页面给出的挑战（从标准输入读入），打印 base64 签名：USB Key 中间件做的事。"""
    passphrase = _passphrase(passphrase_stdin, confirm=False)
    if not passphrase_stdin:
        typer.echo("粘贴待签名内容，以空行结束：", err=True)
    lines: list[str] = []
    for line in sys.stdin:
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.rstrip())
    message = "\n".join(lines) + "\n"
    if not message.startswith(PROTOCOL + "\n"):
        raise UsageError(f"这不是登录挑战（应以 {PROTOCOL} 开头）")
    signature = open_key_file(key, passphrase).sign(message.encode())
    typer.echo(base64.b64encode(signature).decode())


def _signin(ctx: typer.Context) -> SignInKeys:
    settings = settings_from(ctx)
    return SignInKeys(migrated_engine(settings), settings.base_url)

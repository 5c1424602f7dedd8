"""`ecas holders add|unlock`: holders' built-in accounts (持证人账号) for logging in on the phone."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cert_authority.actors import CLI_ACTOR
from cert_authority.cli.support import friendly_errors, settings_from
from cert_authority.services import licence_services
from templates.identifier import mask_holder_code

holders_app = typer.Typer(help="持证人账号（手机亮证登录）", no_args_is_help=True)


@holders_app.command("add")
@friendly_errors
def holders_add(
    ctx: typer.Context,
    code: Annotated[str, typer.Option(help="公民身份号码或统一社会信用代码（与证照上的持证主体代码一致）")],
    name: Annotated[str, typer.Option(help="姓名或名称")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="从标准输入读取密码（脚本用）")] = False,
) -> None:
    """为持证人建立登录账号（密码以 argon2id 散列保存）。"""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("密码", hide_input=True, confirmation_prompt=True)
    holder = licence_services(settings_from(ctx)).accounts.create(code, name, password)
    typer.echo(f"已建立持证人账号：{holder.name}（{mask_holder_code(holder.holder_code)}）")


@holders_app.command("unlock")
@friendly_errors
def holders_unlock(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="公民身份号码或统一社会信用代码")]
) -> None:
    """清除该持证人账号的密码错误计数（各地址的等待随之解除；记入审计）。"""
    licence_services(settings_from(ctx)).accounts.unlock(CLI_ACTOR, code)
    typer.echo(f"已解除 {mask_holder_code(code.strip().upper())} 的登录限制")

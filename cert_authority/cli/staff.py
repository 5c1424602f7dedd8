"""`ecas staff add|unlock`: department staff accounts for the web console and the counter page."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cert_authority.access.staff import StaffAccounts
from cert_authority.actors import CLI_ACTOR, ROLE_NAMES
from cert_authority.cli.support import friendly_errors, settings_from
from cert_authority.services import migrated_engine

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
    member = accounts.create(username, name, role, department, password)
    where = f"，{member.department_name}" if member.department_name else ""
    typer.echo(f"已建立工作人员账号：{member.username}（{member.name}，{ROLE_NAMES[member.role]}{where}）")


@staff_app.command("unlock")
@friendly_errors
def staff_unlock(ctx: typer.Context, username: Annotated[str, typer.Argument(help="登录用户名")]) -> None:
    """清除该账号的密码错误计数（各地址的等待随之解除；记入审计）。"""
    StaffAccounts(migrated_engine(settings_from(ctx))).unlock(CLI_ACTOR, username)
    typer.echo(f"已解除 {username.strip().lower()} 的登录限制")

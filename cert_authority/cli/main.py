"""The `ecas` command line. Every command honours ECAS_DATA_DIR (or --data-dir) and .env.

Commands load lazily: `ecas --help` (and a mistyped command) imports no command module, so it
answers in a fraction of a second instead of importing the whole service (pyHanko, SQLAlchemy,
FastAPI: about 3 s). `COMMANDS` names each command's module and carries its one-line help for the
list; a test checks that each line is the loaded command's own first line and that `ecas --help`
imports none of the heavy packages.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from cert_authority.cli import zh

# name -> (module, attribute, one-line help shown by `ecas --help`), in the order shown.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("cert_authority.cli.run", "demo", "建立本地演示机构（可重复运行），然后在 127.0.0.1 上启动服务。"),
    "serve": ("cert_authority.cli.run", "serve", "启动 HTTP 服务（接口文档在 /docs）；多个工作进程共用一个数据库。"),
    "issue": (
        "cert_authority.cli.licences",
        "issue",
        "颁发证照：校验、编号、生成 PDF/OFD 并加盖电子印章，打印证照标识与文件 SM3。",
    ),
    "issue-batch": (
        "cert_authority.cli.batch",
        "issue_batch",
        "批量颁证（存量证照签章）：逐行校验、编号、生成并签章；可重复运行，已颁发的行自动跳过。",
    ),
    "verify": (
        "cert_authority.cli.verify",
        "verify",
        "验证证照：文件完整性、签名、印章、证书链、吊销状态、证照状态与登记记录。",
    ),
    "stats": (
        "cert_authority.cli.cases",
        "stats",
        "统计：颁证、用证、亮证核验、办件、所需材料、复用材料与复用率（减材料）。",
    ),
    "licence": ("cert_authority.cli.licences", "licence_app", "证照：查看、列表、导出、变更、吊销、注销、历史"),
    "types": ("cert_authority.cli.registry", "types_app", "证照类型：登记、认领、查看、新增模板版本、预览"),
    "seals": (
        "cert_authority.cli.seals",
        "seals_app",
        "电子印章：申请备案、审批、驳回、暂停与恢复、导入、吊销、查看、导出备案，为本部门文件盖章",
    ),
    "departments": ("cert_authority.cli.registry", "departments_app", "部门：登记与查看颁证、用证部门"),
    "staff": ("cert_authority.cli.staff", "staff_app", "部门工作人员账号（颁证管理与窗口核验页面登录）"),
    "holders": ("cert_authority.cli.holders", "holders_app", "持证人账号（手机亮证登录）"),
    "apikey": ("cert_authority.cli.registry", "apikey_app", "API 密钥：创建、查看、吊销"),
    "matters": ("cert_authority.cli.cases", "matters_app", "办事事项：登记与查看（所需材料、办理部门）"),
    "cases": ("cert_authority.cli.cases", "cases_app", "办件：开具材料清单、复用证照、办结并出具材料复用清单"),
    "duty-rules": ("cert_authority.cli.cases", "duty_rules_app", "依职责用证规则：查看、授予、设定截止日、撤销"),
    "pki": ("cert_authority.cli.pki", "pki_app", "分中心CA：初始化、签发与吊销印章证书、CRL、导出"),
    "tsa": ("cert_authority.cli.tsa", "tsa_app", "时间戳服务（RFC 3161 / GB/T 20520，SM2/SM3）"),
    "keys": ("cert_authority.cli.keys", "keys_app", "密钥：私钥静态加密（SM4）、数据加密密钥的轮换"),
    "data": ("cert_authority.cli.data", "data_app", "个人信息加密存储（SM4-GCM）"),
    "audit": ("cert_authority.cli.audit", "audit_app", "审计记录防篡改：校验链、锚定链头"),
    "log": ("cert_authority.cli.log", "log_app", "透明日志：签名树头、补记、见证核验"),
    "sync": ("cert_authority.cli.sync", "sync_app", "向省级电子证照库推送变更事件、查看状态、对账"),
    "cities": ("cert_authority.cli.sync", "cities_app", "省级库：登记向本库推送的城市"),
    "bench": ("cert_authority.cli.bench", "bench_app", "性能基准（打印测量值，不是测试）"),
}


def load_command(name: str) -> Any:
    """The click command behind `ecas NAME`, importing its module now."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Any = typer.main.get_group(target)
    else:  # a single command: a function
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists every command from `COMMANDS` without importing it, and imports a
    command's module only when that command runs (or shows its own help)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (_, _, short) in COMMANDS.items():
            self.commands[name] = typer.core.TyperCommand(name, help=short)  # placeholders for the list

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        with zh.usage_errors():
            name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS and command is self.commands[name] and command.callback is None:
            command = self.commands[name] = load_command(name)
            zh.localise_tree(command, ctx)
        return name, command, rest

    def get_help_option(self, ctx: Any) -> Any:
        return zh.localised_help_option(super().get_help_option(ctx))

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with zh.usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with zh.usage_errors():  # the subcommands' own parsing happens in here
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        zh.localise_messages()
        return super().main(*args, **kwargs)


app = typer.Typer(help="ECAS 电子证照与电子印章服务", no_args_is_help=True, add_completion=False, cls=LazyGroup)

__all__ = ["COMMANDS", "app", "load_command", "main"]


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="数据目录（默认 ./var，或环境变量 ECAS_DATA_DIR）")] = None,
) -> None:
    overrides = {"data_dir": data_dir} if data_dir else {}
    ctx.obj = overrides


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # output after a command returned (click's own), to a closed pipe
        from cert_authority.cli.support import quiet_closed_pipe

        quiet_closed_pipe()
        sys.exit(0)

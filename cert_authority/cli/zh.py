"""The command line speaks one language: the words typer and click add to every help page
(panel titles, "[default: …]", the --help option's own line) in Chinese, like our help texts.

Kept apart from `main` and free of project imports, so that `ecas --help` stays light."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import typer.core
from typer._click.exceptions import ClickException

HELP_OPTION = "显示本帮助并退出。"

# typer.rich_utils' module constants, read each time a help page or error panel is drawn.
RICH_TEXTS = {
    "DEPRECATED_STRING": "（已弃用）",
    "DEFAULT_STRING": "[默认：{}]",
    "ENVVAR_STRING": "[环境变量：{}]",
    "REQUIRED_LONG_STRING": "[必填]",
    "ARGUMENTS_PANEL_TITLE": "参数",
    "OPTIONS_PANEL_TITLE": "选项",
    "COMMANDS_PANEL_TITLE": "命令",
    "ERRORS_PANEL_TITLE": "错误",
    "ABORTED_TEXT": "已中止。",
    "RICH_HELP": "运行 [blue]'{command_path} {help_option}'[/] 查看帮助。",
}


def localise_messages() -> None:
    """Put the Chinese panel titles and markers into typer's help and error pages."""
    if not typer.core.HAS_RICH:  # plain click pages: only the --help line is ours
        return
    from typer import rich_utils

    for name, text in RICH_TEXTS.items():
        if hasattr(rich_utils, name):
            setattr(rich_utils, name, text)


def localised_help_option(option: Any) -> Any:
    if option is not None:
        option.help = HELP_OPTION
    return option


def localise_tree(command: Any, ctx: Any) -> None:
    """Every command under `command` shows the --help line in Chinese. Click caches each
    command's help option, so setting its text once holds for the run."""
    localised_help_option(command.get_help_option(ctx))
    for sub in getattr(command, "commands", {}).values():
        localise_tree(sub, ctx)


# click's usage errors as it words them, and as a newcomer reads them; `hint` is click's suggestion
# (a close command name, the possible options). A message that matches none (a newer click's
# wording) is shown as it is.
_USAGE_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.DOTALL), template)
    for pattern, template in (
        (r"^No such command '(?P<x>.*?)'\.(?: Did you mean (?P<hint>.*)\?)?$", "没有命令 '{x}'。"),
        (r"^No such option: (?P<x>\S+)(?: \(Possible options: (?P<hint>.*)\))?$", "没有选项 {x}。"),
        (r"^Missing command\.$", "缺少命令。"),
        (r"^Missing argument (?P<x>.*?)\.(?P<more>.*)$", "缺少参数 {x}。{more}"),
        (r"^Missing option (?P<x>.*?)\.(?P<more>.*)$", "缺少选项 {x}。{more}"),
        (r"^Missing parameter:? (?P<x>.*)$", "缺少参数 {x}"),
        (r"^Got unexpected extra arguments? \((?P<x>.*)\)$", "多余的参数：{x}"),
        (r"^Option (?P<x>.*) requires an argument\.$", "选项 {x} 需要一个值。"),
        (r"^Invalid value for (?P<x>.*?): (?P<more>.*)$", "{x} 的值无效：{more}"),
        (r"^Invalid value: (?P<more>.*)$", "值无效：{more}"),
    )
)
_VALUE_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"(.*) is not a valid integer( range)?\.", r"\1 不是整数。"),
        (r"(.*) is not a valid float( range)?\.", r"\1 不是数字。"),
        (r"(.*) is not a valid boolean\.", r"\1 不是是/否值。"),
        (r"(.*) is not in the range (.*)\.", r"\1 不在范围 \2 内。"),
        (r"(.*) is not one of (.*)\.", r"\1 不是可选值 \2 之一。"),
        (r"(?:File|Directory|Path) (.*) does not exist\.", r"\1 不存在。"),
        (r"Input should be a valid integer.*", "应为整数"),
        (r"Input should be a valid number.*", "应为数字"),
        (r"Input should be a valid boolean.*", "应为是/否值"),
        (r"Input should be greater than or equal to (\S+)", r"应不小于 \1"),
        (r"Input should be less than or equal to (\S+)", r"应不大于 \1"),
        (r"Input should be greater than (\S+)", r"应大于 \1"),
        (r"Input should be less than (\S+)", r"应小于 \1"),
    )
)


def usage_message(message: str) -> str:
    """click's English usage error in Chinese."""
    for pattern, template in _USAGE_ERRORS:
        match = pattern.match(message)
        if match:
            parts = {k: v or "" for k, v in match.groupdict().items()}
            message = template.format(**parts) + (f" 是否要用：{parts['hint']}？" if parts.get("hint") else "")
            break
    for pattern, replacement in _VALUE_ERRORS:
        message = pattern.sub(replacement, message)
    return message


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Usage errors raised inside leave in Chinese."""
    try:
        yield
    except ClickException as exc:
        text = usage_message(exc.format_message())
        exc.format_message = lambda: text  # type: ignore[method-assign]
        raise

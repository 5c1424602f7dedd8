"""`ecas` help as a newcomer meets it (issue 23): `ecas --help` imports no command module and none of
the heavy libraries (what it imports is checked, not how long it takes); every help text, option
and argument line is Chinese with English command names; click's usage errors read in Chinese."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cert_authority.cli.main import COMMANDS, load_command
from tests.cert_authority.cli_runner import ecas

# What `ecas --help` must not import: each costs tenths of a second to seconds at start-up.
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pyhanko",
    "cryptography",
    "PIL",
    "fontTools",
    "reportlab",
    "httpx",
    "keys",
    "seals",
    "templates",
    "verification",
)
LIGHT_OWN = {"cert_authority", "cert_authority.cli", "cert_authority.cli.main", "cert_authority.cli.zh"}

_PROBE = """
import json, sys
sys.argv = ["ecas", *sys.argv[1:]]
from cert_authority.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def _modules_after(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120, check=False
    )
    modules = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    return done.stdout, set(modules)


@pytest.mark.parametrize("args", [("--help",), ()])
def test_top_level_help_imports_no_command_module(args: tuple[str, ...]) -> None:
    out, modules = _modules_after(*args)
    assert all(name in out for name in COMMANDS), out
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy
    own = {m for m in modules if m.split(".")[0] == "cert_authority"}
    assert own <= LIGHT_OWN, sorted(own - LIGHT_OWN)


def test_a_command_loads_only_its_own_module() -> None:
    out, modules = _modules_after("tsa", "--help")
    assert "时间戳" in out
    assert "cert_authority.cli.tsa" in modules
    assert not {"cert_authority.cli.licences", "cert_authority.cli.cases", "cert_authority.cli.bench"} & modules


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_line_is_the_commands_own(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert (command.help or "").strip().splitlines()[0] == COMMANDS[name][2]


_CJK = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH_PHRASE = re.compile(r"(?:\b[A-Za-z][a-z]+\b[ ,;:()'-]*){3,}")  # three English words in a row
_CODE = re.compile(r"`[^`]*`|ecas [a-z -]+")  # commands quoted in a help text are not prose


def _texts(command: Any, path: str) -> Iterator[tuple[str, str]]:
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {'/'.join(param.opts)}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _texts(sub, f"{path} {name}")


def test_every_help_text_is_chinese() -> None:
    english = [
        (where, text)
        for name in COMMANDS
        for where, text in _texts(load_command(name), f"ecas {name}")
        if not _CJK.search(text) or _ENGLISH_PHRASE.search(_CODE.sub("", text))
    ]
    assert english == []


def test_help_pages_and_usage_errors_speak_chinese() -> None:
    code, out = ecas("licence", "list", "--help")
    assert code == 0
    assert "显示本帮助并退出" in out and "Show this message" not in out
    assert "选项" in out and "[默认：50]" in out
    code, out = ecas("licenc")
    assert code == 2 and "没有命令 'licenc'" in out and "'licence'" in out and "No such" not in out
    code, out = ecas("licence", "list", "--page", "x")
    assert code == 2 and "'--page' 的值无效：应为整数" in out
    code, out = ecas("licence", "show")
    assert code == 2 and "缺少参数 'identifier'" in out

"""What every `ecas` command shares: one clear error line instead of a stack trace, settings from
the global options, and the services built on them."""

from __future__ import annotations

import datetime as dt
import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from cert_authority.errors import ServiceError
from cert_authority.settings import Settings, load_settings
from keys.errors import KeysError
from seals.errors import SealError
from templates.errors import TemplateError

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(Exception):
    """The command was given something it cannot use (a missing file, options that exclude each other)."""


def friendly_errors(command: F) -> F:
    """Users get one clear line and exit code 1, never a stack trace. A reader that closed the pipe
    (`ecas licence list | head -1`) is no error: the command stops quietly."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            quiet_closed_pipe()
            raise typer.Exit(0) from None
        except OSError as exc:
            typer.secho(f"错误：{os_error_text(exc)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except (ServiceError, KeysError, SealError, TemplateError, UsageError) as exc:
            typer.secho(f"错误：{exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


_OS_ERRORS = {
    errno.ENOENT: "文件或目录不存在",
    errno.EACCES: "没有访问权限",
    errno.EPERM: "没有访问权限",
    errno.EISDIR: "这是一个目录，不是文件",
    errno.ENOTDIR: "路径中有一段不是目录",
    errno.ENOSPC: "磁盘空间不足",
    errno.EROFS: "文件系统只读",
}


def os_error_text(exc: OSError) -> str:
    """An operating system's error in the user's language, naming the file (not Python's English)."""
    what = _OS_ERRORS.get(exc.errno or 0)
    if what is None or exc.filename is None:
        return str(exc)
    return f"{what}：{exc.filename}"


def writable_file(path: Path | None) -> Path | None:
    """A typer callback for output files: refused before the command does anything (a case closed,
    a use code spent) when the file could not be written afterwards."""
    if path is None:
        return None
    if path.is_dir():
        raise typer.BadParameter(f"{path} 是一个目录，请给出文件名")
    if not path.parent.is_dir():
        raise typer.BadParameter(f"目录 {path.parent} 不存在")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"没有写入 {path} 的权限")
    return path


def quiet_closed_pipe() -> None:
    """The reader went away: write nothing more (Python would complain while flushing stdout at
    exit). The caller exits with status 0: `head` saw all it wanted."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): nothing to silence
        pass


def public_address(settings: Settings, host: str, port: int) -> Settings:
    """The address written into certificates and licence QR codes: ECAS_BASE_URL when it is set,
    else where `serve`/`demo` listens (a wildcard host as this machine's loopback)."""
    if "base_url" in settings.model_fields_set:
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (compared, not bound)
    shown = f"[{shown}]" if ":" in shown else shown
    return settings.model_copy(update={"base_url": f"http://{shown}:{port}"})


def require_data(settings: Settings) -> Settings:
    """Read and change commands work on an existing authority: a mistyped or unset data directory
    must not become a new empty database that answers 共 0 条."""
    if settings.database_url is None and not (settings.data_dir / "ecas.db").is_file():
        raise NoDataError(
            f"数据目录 {settings.data_dir.resolve()} 中没有 ECAS 数据：请用 --data-dir 或环境变量 ECAS_DATA_DIR "
            "指定数据目录，或先运行 ecas demo（演示）或 ecas pki init（正式部署）"
        )
    return settings


class NoDataError(UsageError):
    """The data directory holds no ECAS database."""


def settings_from(ctx: typer.Context, new_ok: bool = False) -> Settings:
    """The settings from the environment and the global options; unless `new_ok` (commands that
    set up an authority), the data directory must hold one."""
    settings = load_settings(**(ctx.find_root().obj or {}))
    return settings if new_ok else require_data(settings)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def option_date(text: str | None, what: str) -> dt.date | None:
    """A --date option as a date; None when not given."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what} 应为 YYYY-MM-DD 格式的日期，收到 {text!r}") from None

"""What every `ecas` command shares: one clear error line instead of a stack trace, settings from
the global options, and the services built on them."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
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
    """Users get one clear line and exit code 1, never a stack trace."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ServiceError, KeysError, SealError, TemplateError, UsageError, OSError) as exc:
            typer.secho(f"错误：{exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def settings_from(ctx: typer.Context) -> Settings:
    return load_settings(**(ctx.find_root().obj or {}))


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

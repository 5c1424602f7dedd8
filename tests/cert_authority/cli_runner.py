"""`ecas` run in-process for tests (typer's CliRunner): the exit code and output, never a trace."""

from __future__ import annotations

from typer.testing import CliRunner

from cert_authority.cli.main import app

runner = CliRunner()


def ecas(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def ok(*args: str) -> str:
    code, out = ecas(*args)
    assert code == 0, out
    return out


def fails(*args: str) -> str:
    """A refused command: exit code 1 and one line starting with 错误：."""
    code, out = ecas(*args)
    assert code == 1, out
    assert out.startswith("错误：") and len(out.strip().splitlines()) == 1, out
    return out

"""The server's log sequencer says a lasting failure once, not every round (found trying a
province instance as a user: a traceback a second, "CA 尚未初始化", 253 in five minutes)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cert_authority.errors import NotInitialisedError
from cert_authority.http.log_sequencer import _run


class _Log:
    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = outcomes

    def integrate(self, *_: Any) -> None:
        if not self.outcomes:
            raise asyncio.CancelledError  # enough rounds: ends the loop
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def test_a_lasting_failure_is_said_once_and_the_recovery_too(caplog: pytest.LogCaptureFixture) -> None:
    no_ca = NotInitialisedError("CA 尚未初始化")
    gone = ConnectionError("database gone")
    rounds: list[Exception | None] = [no_ca, no_ca, no_ca, None, gone, gone, gone, None]
    with caplog.at_level(logging.INFO, logger="ecas.transparency"), pytest.raises(asyncio.CancelledError):
        asyncio.run(_run(_Log(rounds), 0.001))  # type: ignore[arg-type]
    said = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert said == [
        ("WARNING", "transparency log: not sequenced until this instance has its CA"),
        ("INFO", "transparency log: sequencing again"),
        ("ERROR", "transparency log: sequencing failed"),
        ("INFO", "transparency log: sequencing again"),
    ]

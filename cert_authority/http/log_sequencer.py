"""The transparency log's sequencer in the server: every `ECAS_LOG_INTERVAL_SECONDS` each worker
tries to sequence what was queued (`TransparencyLog.integrate`); one runs at a time (an advisory
lock on PostgreSQL), the others find the lock taken and skip their turn. Proofs and verification also
sequence on demand, so a leaf never waits for the timer to be proved."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from cert_authority.errors import NotInitialisedError
from cert_authority.transparency.log import BATCH_LIMIT, TransparencyLog

log = logging.getLogger("ecas.transparency")


async def _run(transparency: TransparencyLog, interval: float) -> None:
    failing: str | None = None  # the error of the last round, said once, not every second
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(transparency.integrate, None, BATCH_LIMIT, False)
        except NotInitialisedError as exc:  # no CA here (a province library, or before pki init)
            if failing != str(exc):
                log.warning("transparency log: not sequenced until this instance has its CA (%s)", exc)
            failing = str(exc)
        except Exception as exc:  # the next round tries again; a failing database must not end the loop
            if failing != repr(exc):
                log.exception("transparency log: sequencing failed (said again only when it changes)")
            failing = repr(exc)
        else:
            if failing is not None:
                log.info("transparency log: sequencing again")
            failing = None


@asynccontextmanager
async def log_sequencer(app: FastAPI) -> AsyncIterator[None]:
    interval = app.state.settings.log_interval_seconds
    task = asyncio.create_task(_run(app.state.transparency_log, interval)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()

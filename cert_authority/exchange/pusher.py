"""The pusher (city side): delivers the change feed to the provincial library, in sequence order, in
batches signed by the city authority's service key (`exchange.signing`).

At least once: the acknowledged sequence number is recorded only after the province answered, so a
crash or kill -9 at any point resends at most the batch in flight, which the province recognises
by event id (exactly once there). The province's answer is the truth about where to resume: after
a 409 sequence_gap it names its acknowledged number, and the pusher carries on from there. Failures
back off exponentially (1 s, 2 s, 4 s ... at most 60 s), each delay drawn between half and all of
it (jitter), so cities that failed together do not retry together.

The sealed files follow the events, by SM3 (`POST /api/v1/exchange/files`): events first, so a
revocation never waits behind megabytes of new licences' files (measured: docs/exchange.md); then
the files the province's receipts and status say it lacks.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from cert_authority.errors import ConfigError, ServiceError
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.exchange.signing import SIGNATURE_HEADER, sign_body
from cert_authority.exchange.wire import encode_batch, encode_request
from cert_authority.pki.service import PkiService
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import ExchangePushRow
from cert_authority.store.outbox import FeedEvent, read_feed
from cert_authority.store.packing import PackedFiles
from cert_authority.store.personal import personal_data_for
from cert_authority.timeutil import aware, utc_now
from keys.errors import KeysError
from keys.x509 import Certificate

log = logging.getLogger("ecas.sync")

_STATE = ExchangePushRow.__table__  # type: ignore[attr-defined]
BATCH_EVENTS = 500
BATCH_FILE_BYTES = 12 * 1024 * 1024  # the province accepts 32 MB bodies; base64 adds a third
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
BATCHES_PATH = "/api/v1/exchange/batches"
STATUS_PATH = "/api/v1/exchange/status"
DAYS_PATH = "/api/v1/exchange/days"
FILES_PATH = "/api/v1/exchange/files"


class PushError(ServiceError):
    """The province could not be reached, or refused a batch (recorded; the pusher retries)."""


@dataclass(frozen=True)
class PushResult:
    sent: int
    acked: int
    pending: int
    files_sent: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "acked": self.acked, "pending": self.pending, "files_sent": self.files_sent}


def backoff_delay(failures: int, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `failures` consecutive failures: exponential, capped, with jitter."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return ceiling * (0.5 + draw() / 2)


class Pusher:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        pki: PkiService,
        client: httpx.Client | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        batch_events: int = BATCH_EVENTS,
    ) -> None:
        settings = pki.settings
        if not settings.province_url:
            raise ConfigError("未设置省级电子证照库地址 ECAS_PROVINCE_URL：推送、核对和推送状态都按此地址进行")
        self.engine = engine
        self.filestore = filestore
        self.packed = PackedFiles(filestore, engine)  # licence files may be stored packed
        self.pki = pki
        self.target = settings.province_url
        self.city = settings.authority_uscc
        self.client = client or httpx.Client(base_url=self.target, timeout=httpx.Timeout(30.0, connect=5.0))
        self.clock = clock
        self.batch_events = batch_events
        self.feed = ChangeFeed(engine, personal_data_for(settings), clock)
        self._checked_root = False

    # --- pushing ----------------------------------------------------------------------------------
    def push_once(self) -> PushResult:
        """Deliver everything pending now; PushError (recorded) on the first failure."""
        self._check_own_chain()
        self.feed.refresh()
        acked = self._state()["acked_seq"]
        sent = 0
        missing: set[str] = set()
        try:
            missing |= set(self.ask(STATUS_PATH).get("missing_files") or [])  # left by an earlier run
            while True:
                with self.engine.connect() as connection:
                    events = read_feed(connection, self.feed.personal, acked, self.batch_events)
                if not events:
                    break
                answer = self.post_batch(events)
                if answer.get("error") == "sequence_gap":
                    log.warning("province acknowledged %s, not %s: resuming from there", answer["acked"], acked)
                else:
                    sent += len(events)
                    missing |= set(answer.get("missing_files") or [])
                acked = int(answer["acked"])
                self._record_success(acked, len(events))
            files_sent = self.send_files(sorted(missing))
        except PushError as exc:
            self._record_failure(str(exc))
            raise
        return PushResult(sent, acked, self.pending(acked), files_sent)

    def run(
        self, should_stop: Callable[[], bool], idle_s: float = 1.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        """Push until told to stop: pending events at once, otherwise every `idle_s`; after a
        failure, wait the backoff delay."""
        failures = 0
        while not should_stop():
            try:
                result = self.push_once()
            except PushError as exc:
                failures += 1
                delay = backoff_delay(failures)
                log.warning("push failed (%d in a row): %s; retrying in %.1f s", failures, exc, delay)
                sleep(delay)
                continue
            failures = 0
            if result.sent:
                log.info("pushed %d events, acknowledged up to %d", result.sent, result.acked)
            sleep(idle_s)

    def post_batch(self, events: list[FeedEvent]) -> dict[str, Any]:
        now = self.clock()
        body = encode_batch(self.city, now, events, {}, self.pki.current_crl(now))
        return self._post(BATCHES_PATH, body, now, accept_gap=True)

    def send_files(self, names: list[str]) -> int:
        """The sealed files the province lacks, in requests of at most BATCH_FILE_BYTES."""
        chunk: dict[str, str] = {}
        size = sent = 0
        for name in names:
            data = self.packed.get(name)  # the sealed file itself, never its packed form
            if chunk and size + len(data) > BATCH_FILE_BYTES:
                self.ask(FILES_PATH, files=chunk)
                sent, chunk, size = sent + len(chunk), {}, 0
            chunk[name] = base64.b64encode(data).decode()
            size += len(data)
        if chunk:
            self.ask(FILES_PATH, files=chunk)
            sent += len(chunk)
        return sent

    def _post(self, path: str, body: bytes, now: dt.datetime, accept_gap: bool = False) -> dict[str, Any]:
        headers = {
            SIGNATURE_HEADER: sign_body(self.pki.service_signer(now), body, now),
            "Content-Type": "application/json",
        }
        try:
            response = self.client.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PushError(f"省级库 {self.target} 无法连接：{type(exc).__name__} {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 200 or (accept_gap and response.status_code == 409 and "acked" in answer):
            if not isinstance(answer, dict) or not isinstance(answer.get("acked", 0), int):
                raise PushError(f"省级库的应答格式错误（HTTP {response.status_code}）")
            return answer
        message = answer.get("message") if isinstance(answer, dict) else None
        raise PushError(
            f"省级库拒收（HTTP {response.status_code} {answer.get('error', '')}）：{message or response.text[:200]}"
        )

    # --- state ------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        with self.engine.begin() as connection:
            row = connection.execute(select(_STATE).where(_STATE.c.target == self.target)).mappings().first()
            if row is None:
                connection.execute(
                    insert(_STATE).values(target=self.target, acked_seq=0, sent_events=0, failures=0, total_failures=0)
                )
                return {
                    "acked_seq": 0,
                    "sent_events": 0,
                    "failures": 0,
                    "total_failures": 0,
                    "last_error": None,
                    "last_attempt_at": None,
                    "last_success_at": None,
                }
            return dict(row)

    def _record_success(self, acked: int, sent: int) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            connection.execute(
                update(_STATE)
                .where(_STATE.c.target == self.target)
                .values(
                    acked_seq=acked,
                    sent_events=_STATE.c.sent_events + sent,
                    failures=0,
                    last_error=None,
                    last_attempt_at=now,
                    last_success_at=now,
                )
            )

    def _record_failure(self, error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(_STATE)
                .where(_STATE.c.target == self.target)
                .values(
                    failures=_STATE.c.failures + 1,
                    total_failures=_STATE.c.total_failures + 1,
                    last_error=error[:500],
                    last_attempt_at=self.clock(),
                )
            )

    def pending(self, acked: int) -> int:
        return max(0, self.feed.latest() - acked)

    def status(self) -> dict[str, Any]:
        """`ecas sync status`: what the province acknowledged, the lag, the failures."""
        self.feed.refresh()
        state = self._state()
        acked = int(state["acked_seq"])
        latest = self.feed.latest()
        with self.engine.connect() as connection:
            oldest = read_feed(connection, self.feed.personal, acked, 1)
        lag_s = (self.clock() - oldest[0].at).total_seconds() if oldest else 0.0
        when = {k: aware(state[k]).isoformat() if state[k] else None for k in ("last_attempt_at", "last_success_at")}
        return {
            "province_url": self.target,
            "acked": acked,
            "latest": latest,
            "pending": max(0, latest - acked),
            "lag_events": max(0, latest - acked),
            "lag_seconds": round(max(0.0, lag_s), 3),
            "sent_events": int(state["sent_events"]),
            "failures": int(state["failures"]),
            "total_failures": int(state["total_failures"]),
            "last_error": state["last_error"],
        } | when

    # --- signed reads (reconciliation) ------------------------------------------------------------
    def ask(self, path: str, **fields: Any) -> dict[str, Any]:
        now = self.clock()
        return self._post(path, encode_request(self.city, now, **fields), now)

    def _check_own_chain(self) -> None:
        """With ECAS_PROVINCE_ROOT set, refuse to push under a certificate the province cannot accept."""
        root_path = self.pki.settings.province_root
        if root_path is None or self._checked_root:
            return
        try:
            root = Certificate.load(root_path.read_bytes())
            self.pki.branch_certificate().check_issued_by(root, self.clock())
        except (OSError, KeysError) as exc:
            raise ConfigError(f"本市分中心证书不能链接到 ECAS_PROVINCE_ROOT（{root_path}）：{exc}") from None
        self._checked_root = True

"""`ecas bench sync`: the provincial link between two local instances, each with its own data
directory and database (a schema of its own on PostgreSQL): a city set up as `ecas bench issue`
does, and a province served by `ecas serve` in its own process, with the city registered.

1. Backlog: the city issues `licences` food business licences; one push drains the events (with
   the setup's seal and type events): issue_events_per_s, then sends their sealed files, timed
   apart (files_seconds, file_mb_per_s). Then it revokes half of them and one push drains those:
   revocation_events_per_s. events_per_s is all the events over the time of their batches.
2. Live: for `seconds`, a thread issues licences in small batches while the pusher pushes as it
   goes; each licence's lag is the time from its commit to the province's acknowledgement:
   lag_p50_ms, lag_p99_ms.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import httpx

from cert_authority.actors import CLI_ACTOR
from cert_authority.bench.issue import prepare
from cert_authority.bench.serve import bench_database, running_service
from cert_authority.demo import DEPARTMENTS, FOOD_TYPE, demo_licences, demo_uscc, ensure_demo_kek
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.exchange.pusher import Pusher
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.services import LicenceServices, migrated_engine
from cert_authority.settings import load_settings
from cert_authority.store.filestore import file_store_for
from cert_authority.store.outbox import read_feed
from cert_authority.timeutil import utc_now

TARGET_EVENTS_PER_S = 1000
CITY_NAME = "演示市"


def sync_benchmark(licences: int, seconds: float, database_url: str, batch_events: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ecas-bench-sync-") as directory,
        _database(database_url) as city_url,
        _database(database_url) as province_url,
    ):
        root = Path(directory)
        city_settings = load_settings(data_dir=root / "city", database_url=city_url)
        services = prepare(city_settings)
        issued = _issue(services, licences, 0)
        province_settings = load_settings(data_dir=root / "province", database_url=province_url)
        ensure_demo_kek(province_settings)
        pki = services.issuance.seals.pki
        service, branch, city_root = pki.service_signer(utc_now()).certificate_chain
        province_engine = migrated_engine(province_settings)
        ProvinceLibrary(province_engine, file_store_for(province_settings, province_engine)).register_city(
            city_settings.authority_uscc, CITY_NAME, service.pem + branch.pem, city_root
        )
        province_engine.dispose()
        environment = {"ECAS_DATA_DIR": str(province_settings.data_dir.resolve())}
        if province_url:
            environment["ECAS_DATABASE_URL"] = province_url
        with (
            running_service(environment, workers=1) as province,
            httpx.Client(base_url=province.base_url, timeout=60) as client,
        ):
            city_settings.province_url = province.base_url
            pusher = _TimedPusher(
                services.issuance.engine, services.issuance.filestore, pki, client, batch_events=batch_events
            )
            pusher.feed.refresh()
            started = time.perf_counter()
            issues = pusher.push_once()  # setup events and the issues, then their sealed files
            issues_s = time.perf_counter() - started - pusher.files_s
            files_s = pusher.files_s
            for identifier in issued[: licences // 2]:
                services.lifecycle.revoke(CLI_ACTOR, identifier, "基准测试")
            pusher.feed.refresh()
            started = time.perf_counter()
            revocations = pusher.push_once()
            revocations_s = time.perf_counter() - started
            lags = _live(services, pusher, seconds)
        file_bytes = _file_bytes(services, issued[-1])
        return {
            "database": "postgresql" if city_url else "sqlite",
            "events": issues.sent + revocations.sent,
            "licences": licences,
            "batch_events": batch_events,
            "seconds": round(issues_s + revocations_s, 3),
            "events_per_s": round((issues.sent + revocations.sent) / (issues_s + revocations_s), 1),
            "issue_events_per_s": round(issues.sent / issues_s, 1),
            "revocation_events_per_s": round(revocations.sent / revocations_s, 1),
            "files_sent": issues.files_sent,
            "files_seconds": round(files_s, 3),
            "file_mb_per_s": round(issues.files_sent / 2 * file_bytes / files_s / 1e6, 1) if files_s else None,
            "file_bytes_per_licence": file_bytes,
            "live_licences": len(lags),
            "lag_p50_ms": round(statistics.median(lags), 1) if lags else None,
            "lag_p99_ms": round(_percentile(lags, 0.99), 1) if lags else None,
            "target_events_per_s": TARGET_EVENTS_PER_S,
        }


class _TimedPusher(Pusher):
    """Counts the time spent sending sealed files apart from the events'."""

    files_s = 0.0

    def send_files(self, names: list[str]) -> int:
        started = time.perf_counter()
        try:
            return super().send_files(names)
        finally:
            self.files_s += time.perf_counter() - started


def _database(url: str) -> AbstractContextManager[str | None]:
    """A schema of its own on PostgreSQL; for "sqlite", each instance's file in its data directory."""
    return nullcontext(None) if url == "sqlite" else bench_database(url)


def _issue(services: LicenceServices, count: int, offset: int, chunk: int = 50) -> list[str]:
    base = next(d for d in demo_licences() if d.type_code == FOOD_TYPE).data
    identifiers: list[str] = []
    issuer = DEPARTMENTS[0].uscc
    for start in range(0, count, chunk):
        requests = [
            IssueRequest({**base, "operator_code": demo_uscc("350103", 200_000 + offset + n)})
            for n in range(start, min(count, start + chunk))
        ]
        outcomes = services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, issuer_uscc=issuer)
        identifiers += [o.result.licence.identifier for o in outcomes if o.result is not None]
    return identifiers


def _live(services: LicenceServices, pusher: Pusher, seconds: float) -> list[float]:
    """Issue for `seconds` in one thread while pushing in this one; the lag of each licence."""
    committed: dict[str, float] = {}
    done = threading.Event()

    def issuing() -> None:
        offset = 100_000
        while not done.is_set():
            for identifier in _issue(services, 5, offset, chunk=5):
                committed[identifier] = time.perf_counter()
            offset += 5

    thread = threading.Thread(target=issuing, daemon=True)
    acked_at: dict[str, float] = {}
    acked = pusher.push_once().acked
    thread.start()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or thread.is_alive():
        if time.perf_counter() >= deadline:
            done.set()
            thread.join()
        result = pusher.push_once()
        now = time.perf_counter()
        if result.acked > acked:
            with pusher.engine.connect() as connection:
                for event in read_feed(connection, pusher.feed.personal, acked, result.acked - acked):
                    acked_at.setdefault(event.subject, now)
            acked = result.acked
        else:
            time.sleep(0.01)
    return [(acked_at[i] - t) * 1000 for i, t in committed.items() if i in acked_at]


def _file_bytes(services: LicenceServices, identifier: str) -> int:
    """The sealed PDF and OFD of one licence: what an issue event carries besides its metadata."""
    return sum(len(services.queries.file(CLI_ACTOR, identifier, kind)) for kind in ("pdf", "ofd"))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

"""Killed with SIGKILL in the middle of issuing (no chance to clean up): after a restart no licence
is half issued (every record has its sealed files, intact), no identifier is used twice, and
sending the same requests again, or running the same batch file again, completes the work exactly
once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.actors import CLI_ACTOR
from cert_authority.bench.issue import write_rows
from cert_authority.demo import demo_licences, demo_uscc
from cert_authority.store.models import LicenceRow
from tests.cert_authority.serving import free_port, wait_until_serving
from tests.conftest import FOOD_TYPE, ISSUER_USCC, LicenceEnv, table_counts

pytestmark = pytest.mark.slow  # servers and batch runs in subprocesses, killed and restarted

ECAS = str(Path(sys.executable).with_name("ecas"))


def _environment(env: LicenceEnv) -> dict[str, str]:
    return {
        **os.environ,
        "ECAS_DATA_DIR": str(env.settings.data_dir),
        "ECAS_DATABASE_URL": env.settings.effective_database_url,
        "ECAS_KEK": "test-passphrase",
    }


@contextmanager
def serving(env: LicenceEnv, port: int, workers: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        [ECAS, "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"],
        env=_environment(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server)
        yield server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def assert_whole(env: LicenceEnv) -> list[LicenceRow]:
    """Every licence record has both sealed files, intact (the store checks each file's SM3), and
    every identifier is used once."""
    with Session(env.engine) as session:
        rows = list(session.exec(select(LicenceRow)).all())
    identifiers = [row.identifier for row in rows]
    assert len(identifiers) == len(set(identifiers))
    for row in rows:
        for fmt in ("pdf", "ofd"):
            assert env.services.queries.file(CLI_ACTOR, row.identifier, fmt)
    return rows


def test_kill_during_single_issuance(licence_env: LicenceEnv) -> None:
    env = licence_env
    key = ApiKeyService(env.engine).create("issuer", ISSUER_USCC).key
    food = next(d for d in demo_licences() if d.type_code == FOOD_TYPE).data
    requests = [
        ({**food, "operator_code": demo_uscc("350102", 500 + n)}, f"kill9-{n}") for n in range(16)
    ]
    port = free_port()

    def issue(item: tuple[dict[str, str], str]) -> int:
        data, idempotency_key = item
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/licences",
                json={"type_code": FOOD_TYPE, "data": data},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key},
                timeout=60,
            )
            return answer.status_code
        except httpx.HTTPError:
            return 0  # the server died under it

    with serving(env, port) as server, ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(issue, item) for item in requests]
        _until_issued(env, 2, pending)  # some issued, more on their way
        os.killpg(server.pid, signal.SIGKILL)
        interrupted = [future.result() for future in pending]
    assert 0 in interrupted  # the kill did cut requests short
    assert_whole(env)

    with serving(env, port), ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(issue, requests))
    assert set(statuses) <= {200, 201}, statuses
    rows = assert_whole(env)
    assert len(rows) == len(requests)  # each request issued exactly once, whatever the kill cut


def test_one_worker_killed_the_others_serve_and_it_comes_back(licence_env: LicenceEnv) -> None:
    """With several workers, SIGKILL to one while it issues: the others go on answering, the
    supervisor starts a new worker, and what was issued is whole."""
    env = licence_env
    key = ApiKeyService(env.engine).create("issuer", ISSUER_USCC).key
    food = next(d for d in demo_licences() if d.type_code == FOOD_TYPE).data
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def issue(n: int) -> int:
        try:
            return httpx.post(
                f"{base}/api/v1/licences",
                json={"type_code": FOOD_TYPE, "data": {**food, "operator_code": demo_uscc("350103", 700 + n)}},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"worker-{n}"},
                timeout=60,
            ).status_code
        except httpx.HTTPError:
            return 0

    with serving(env, port, workers=2) as server, ThreadPoolExecutor(6) as pool:
        workers = _children(server.pid)
        assert len(workers) >= 2, workers
        pending = [pool.submit(issue, n) for n in range(24)]
        _until_issued(env, 2, pending)
        os.kill(workers[0], signal.SIGKILL)
        statuses = [future.result() for future in pending]
        assert statuses.count(201) >= 12  # the other worker went on issuing
        deadline = time.monotonic() + 60
        while len(_children(server.pid)) < len(workers):  # the supervisor replaced the dead worker
            assert time.monotonic() < deadline, "no new worker"
            time.sleep(0.2)
        again = list(pool.map(issue, range(24)))  # the same keys: what was cut short is issued now
    assert set(again) <= {200, 201}, again
    assert len(assert_whole(env)) == 24


def _until_issued(env: LicenceEnv, count: int, pending: list[Future[int]]) -> None:
    """Wait until `count` licences are on record; fail (not hang) if every request has ended first,
    with what they answered."""
    deadline = time.monotonic() + 120
    while table_counts(env.engine)["licence"] < count:
        if all(future.done() for future in pending) or time.monotonic() > deadline:
            answered = [future.result() for future in pending if future.done()]
            raise AssertionError(f"fewer than {count} licences issued; the requests answered {answered}")
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    """The uvicorn worker processes under the supervisor (not multiprocessing's resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def test_kill_during_batch_and_resume(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    batch = tmp_path / "stock.csv"
    write_rows(batch, 240)
    command = [ECAS, "issue-batch", str(batch), "--type", FOOD_TYPE, "--workers", "2", "--json"]
    run = subprocess.Popen(command, env=_environment(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 120
    while table_counts(env.engine)["licence"] < 50:
        assert run.poll() is None and time.monotonic() < deadline, "the batch ended before it could be killed"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the command and its worker processes
    run.wait(timeout=30)
    done_before = len(assert_whole(env))
    assert 50 <= done_before < 240

    again = subprocess.run(command, env=_environment(env), capture_output=True, timeout=600, check=True)
    summary = json.loads(again.stdout)
    assert summary["issued"] + summary["skipped"] == 240 and summary["rejected"] == 0, summary
    assert summary["skipped"] == done_before
    assert len(assert_whole(env)) == 240

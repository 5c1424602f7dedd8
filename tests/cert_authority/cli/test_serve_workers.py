"""`ecas serve --workers 2`: two processes on one database, and the rules that must hold across
them: a show token is accepted once even when both workers are asked at once, and a
client's rate limit is one limit, not one per worker. Each worker listens on a socket of its own, so
connections made at once spread over both (`ss` from iproute2 shows who holds which); a service
that cannot reach its database stops with a clear message."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from cert_authority.store.models import AuditEventRow
from tests.cert_authority.serving import free_port, wait_until_serving
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, example_data, issue_example

pytestmark = pytest.mark.slow  # ecas serve --workers 2 in subprocesses

HOLDER = example_data(FOOD_TYPE)["operator_code"]


def test_replay_protection_holds_across_workers(licence_env: LicenceEnv) -> None:
    env = licence_env
    env.services.accounts.create(HOLDER, "好味道餐饮", "workers-test-password")
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    from cert_authority.access.apikeys import ApiKeyService

    key = ApiKeyService(env.registry.engine).create("user", USER_USCC).key
    with two_workers(env) as base:
        session = httpx.post(
            f"{base}/api/v1/holder/login", json={"holder_code": HOLDER, "password": "workers-test-password"}
        ).json()["session_token"]
        token = httpx.post(
            f"{base}/api/v1/holder/licences/{identifier}/show-token",
            headers={"Authorization": f"Bearer {session}"},
            json={},
            timeout=30,
        ).json()["token"]

        def check(_: int) -> str:
            response = httpx.post(
                f"{base}/api/v1/show-tokens/verify",
                json={"token": token},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            return str(response.json()["reason"])

        with ThreadPoolExecutor(8) as pool:
            reasons = list(pool.map(check, range(8)))
        assert sorted(reasons) == ["ok"] + ["replayed"] * 7, reasons
    with Session(env.registry.engine) as db:
        audited = db.exec(select(AuditEventRow.detail_json).where(AuditEventRow.action == "show_verify")).all()
    assert sorted(json.loads(detail or "{}")["reason"] for detail in audited) == sorted(reasons)  # each check once
    # The workers log as the single-process server does (their logging used to be left unset):
    # each check a line, with the time, and the holder's code nowhere.
    logged = _worker_log(env).read_text()
    assert len(re.findall(rf"^\S+ \S+ INFO ecas\.show: show token for {identifier} checked by", logged, re.M)) == 8
    assert HOLDER not in logged


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # on SQLite, limits are per worker
def test_rate_limit_is_one_limit_across_workers(licence_env: LicenceEnv) -> None:
    with two_workers(licence_env, ECAS_RATE_LIMIT_PER_ADDRESS="10") as base:
        if time.time() % 60 > 50:  # all requests in one counting window (a minute)
            time.sleep(61 - time.time() % 60)
        with ThreadPoolExecutor(8) as pool:  # a new connection each, so either worker may answer
            statuses = Counter(
                pool.map(lambda _: httpx.get(f"{base}/api/v1/verify/x", timeout=30).status_code, range(24))
            )
    assert statuses == {401: 10, 429: 14}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about serving, not the database
def test_each_worker_listens_on_its_own_socket_and_connections_spread(licence_env: LicenceEnv) -> None:
    with two_workers(licence_env) as base:
        port = int(base.rsplit(":", 1)[1])
        owners = [_pids(line) for line in _ss(port, "-tlnp")]
        assert len(owners) == 2, owners  # two listening sockets on the one port
        supervisor = set.intersection(*owners)  # keeps both, so a restarting worker's queue waits
        workers = [pids - supervisor for pids in owners]
        assert all(len(pids) == 1 for pids in workers) and workers[0] != workers[1], owners
        # Keep-alive connections made at once, as a proxy's pool makes them: the kernel spreads
        # them over the sockets (all 16 on one has a chance of 2 in 65,536).
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for connection in connections:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read()
        holders = set().union(*(_pids(line) for line in _ss(port, "-tnp", "state", "established")))
        for connection in connections:
            connection.close()
    assert holders == workers[0] | workers[1]


def test_a_service_without_its_database_stops_with_a_clear_message(tmp_path: Path) -> None:
    """`ecas serve` migrates before it starts workers: no database, no workers, one clear line."""
    environment = {**os.environ, "ECAS_DATA_DIR": str(tmp_path), "ECAS_DATABASE_URL": "postgresql://127.0.0.1:1/none"}
    ecas = str(Path(sys.executable).with_name("ecas"))
    run = subprocess.run(
        [ecas, "serve", "--workers", "2", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    # One line for the operator (a library's own DeprecationWarning may come before it).
    assert "错误：数据库不可用" in run.stderr and "Traceback" not in run.stderr


def _ss(port: int, *options: str) -> list[str]:
    """`ss` lines for the sockets on local port `port`, with their owning processes."""
    found = subprocess.run(["ss", "-H", *options, f"( sport = :{port} )"], capture_output=True, text=True, check=True)
    return found.stdout.splitlines()


def _pids(line: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"pid=(\d+)", line)}


@contextmanager
def two_workers(env: LicenceEnv, **settings: str) -> Iterator[str]:
    """`ecas serve --workers 2` on the environment's database and data directory."""
    port = free_port()
    environment = {
        **os.environ,
        "ECAS_DATA_DIR": str(env.settings.data_dir),
        "ECAS_DATABASE_URL": env.settings.effective_database_url,
        "ECAS_KEK": "test-passphrase",
        **settings,
    }
    ecas = str(Path(sys.executable).with_name("ecas"))
    server = subprocess.Popen(
        [ecas, "serve", "--workers", "2", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=_worker_log(env).open("wb"),  # a file: a pipe nobody reads fills up and stalls the server
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _worker_log(env: LicenceEnv) -> Path:
    return env.settings.data_dir / "ecas-serve.log"

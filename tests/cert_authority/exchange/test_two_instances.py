"""Proved with two instances: a city and a province, each `ecas` with its own data directory and
PostgreSQL database, the province served on its own port, the pusher a separate `ecas sync push`
process (killed with SIGKILL mid-batch), the province stopped for a while."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.exchange.pusher import BATCHES_PATH
from cert_authority.exchange.signing import SIGNATURE_HEADER, sign_body
from cert_authority.exchange.wire import encode_batch
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.store.db import create_db_engine, migrate
from cert_authority.timeutil import utc_now
from tests.cert_authority.serving import free_port, wait_until_serving
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    KEK,
    LicenceEnv,
    PostgresDatabases,
    Snapshots,
    example_data,
    issue_example,
    licence_env_copy,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ECAS = str(Path(sys.executable).with_name("ecas"))


@dataclass
class Pair:
    city: LicenceEnv
    province_dir: Path
    province_url: str  # its database
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def city_env(self) -> dict[str, str]:
        return os.environ | {
            "ECAS_DATA_DIR": str(self.city.settings.data_dir),
            "ECAS_DATABASE_URL": self.city.settings.effective_database_url,
            "ECAS_KEK": KEK,
            "ECAS_PROVINCE_URL": self.base,
        }

    def province_env(self) -> dict[str, str]:
        return os.environ | {"ECAS_DATABASE_URL": self.province_url, "ECAS_KEK": KEK}

    def city_ecas(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([ECAS, *args], env=self.city_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 or not check, done.stdout + done.stderr
        return done

    def province_ecas(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ECAS, "--data-dir", str(self.province_dir), *args],
            env=self.province_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=check,
        )

    def province_count(self, table: str) -> int:
        engine = create_db_engine(self.province_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
        finally:
            engine.dispose()

    def push_once(self) -> dict[str, int]:
        done = self.city_ecas("sync", "push", "--once", "--json")
        result = json.loads(done.stdout)
        result.pop("files_sent")
        return result

    def latest(self) -> int:
        feed = ChangeFeed(self.city.engine)
        feed.refresh()
        return feed.latest()


@contextmanager
def province_serving(pair: Pair) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        [ECAS, "--data-dir", str(pair.province_dir), "serve", "--port", str(pair.port), "--no-access-log"],
        env=pair.province_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_serving(pair.base, server)
        yield server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path, snapshots: Snapshots, fonts: object) -> Iterator[Pair]:
    postgres: PostgresDatabases = request.getfixturevalue("postgres")
    (tmp_path / "city").mkdir()
    with licence_env_copy(request, snapshots, fonts, tmp_path / "city", "postgresql") as city:  # type: ignore[arg-type]
        name = postgres.create(f"prov_{uuid.uuid4().hex[:10]}")
        url = postgres.url(name)
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
        pair = Pair(city, tmp_path / "province", url, free_port())
        pair.province_dir.mkdir()
        chain = tmp_path / "city-chain.pem"
        root = tmp_path / "root.pem"
        pair.city_ecas("sync", "certificate", "-o", str(chain))
        root.write_bytes(city.pki.root_certificate().pem)
        pair.province_ecas(
            "cities",
            "add",
            "--uscc",
            city.settings.authority_uscc,
            "--name",
            "演示市",
            "--certificate",
            str(chain),
            "--root",
            str(root),
        )
        yield pair
        postgres.drop_soon(name)


def test_issue_push_verify_revoke_at_the_province(pair: Pair) -> None:
    licence = issue_example(pair.city, FOOD_TYPE).licence
    with province_serving(pair):
        pushed = pair.push_once()
        assert pushed == {"sent": pair.latest(), "acked": pair.latest(), "pending": 0}
        verified = pair.province_ecas("verify", licence.identifier, "--json", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["result"] == "VALID"
        pair.city.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "吊销测试")
        assert pair.push_once()["sent"] == 1
    revoked = pair.province_ecas("verify", licence.identifier, "--json", check=False)
    report = json.loads(revoked.stdout)
    assert revoked.returncode == 1 and report["reason"] == "revoked"


def test_pusher_killed_mid_batch_resumes_and_the_province_has_each_event_once(pair: Pair) -> None:
    requests = [IssueRequest(example_data(FOOD_TYPE)) for _ in range(60)]
    pair.city.services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, issuer_uscc=ISSUER_USCC)
    latest = pair.latest()
    with province_serving(pair):
        for _attempt in range(3):  # kill it once it has delivered something but not everything
            pusher = subprocess.Popen(
                [ECAS, "sync", "push", "--batch-events", "4"],
                env=pair.city_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while pair.province_count("province_event") < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(pusher.pid, signal.SIGKILL)
            pusher.wait(timeout=30)
            if pair.province_count("province_event") < latest:
                break
        stored = pair.province_count("province_event")
        assert 0 < stored < latest, "the pusher finished before it could be killed"
        city_acked = json.loads(pair.city_ecas("sync", "status", "--json").stdout)["acked"]
        assert city_acked <= stored  # what the city recorded never runs ahead of the province
        assert pair.push_once() == {"sent": latest - city_acked, "acked": latest, "pending": 0}
    assert pair.province_count("province_event") == latest
    assert pair.province_count("province_licence") == 60
    city_ids = {event.event_id for event in ChangeFeed(pair.city.engine).events(0, 1000)}
    engine = create_db_engine(pair.province_url)
    with engine.connect() as connection:
        province_ids = connection.execute(text("SELECT event_id, seq FROM province_event")).all()
    engine.dispose()
    assert {row.event_id for row in province_ids} == city_ids
    assert sorted(row.seq for row in province_ids) == list(range(1, latest + 1))


def test_province_down_lag_grows_then_drains(pair: Pair) -> None:
    with province_serving(pair):
        pair.push_once()
    for _ in range(3):
        issue_example(pair.city, FOOD_TYPE)  # the city keeps issuing
    failed = pair.city_ecas("sync", "push", "--once", "--json", check=False)
    assert failed.returncode == 1
    status = json.loads(pair.city_ecas("sync", "status", "--json").stdout)
    assert status["lag_events"] == 3 and status["failures"] >= 1 and status["last_error"]
    assert status["lag_seconds"] > 0
    issue_example(pair.city, FOOD_TYPE)
    assert json.loads(pair.city_ecas("sync", "status", "--json").stdout)["lag_events"] == 4
    with province_serving(pair):
        assert pair.push_once() == {"sent": 4, "acked": pair.latest(), "pending": 0}
    status = json.loads(pair.city_ecas("sync", "status", "--json").stdout)
    assert status["lag_events"] == 0 and status["failures"] == 0


def test_forged_and_unregistered_batches_change_nothing(pair: Pair) -> None:
    issue_example(pair.city, FOOD_TYPE)
    events = ChangeFeed(pair.city.engine).events(0, 1000)
    now = utc_now()
    crl = pair.city.pki.current_crl(now)
    other_key = pair.city.services.seals.active_seal(ISSUER_USCC, now).signer
    forged = encode_batch(pair.city.settings.authority_uscc, now, events, {}, crl)
    stranger = encode_batch("91350100M000100Y43", now, events, {}, crl)
    with province_serving(pair):
        for body, signer, status in ((forged, other_key, 422), (stranger, pair.city.pki.service_signer(now), 403)):
            answer = httpx.post(
                f"{pair.base}{BATCHES_PATH}",
                content=body,
                timeout=30,
                headers={SIGNATURE_HEADER: sign_body(signer, body, now)},
            )
            assert answer.status_code == status, answer.text
    assert pair.province_count("province_event") == 0 and pair.province_count("province_licence") == 0
    cities = json.loads(pair.province_ecas("cities", "list", "--json").stdout)
    assert [city["acked_seq"] for city in cities] == [0]

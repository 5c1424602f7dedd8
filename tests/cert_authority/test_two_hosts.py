"""A stateless application tier (issue 24): two `ecas serve` hosts, each a separate process with its
own data directory, sharing one PostgreSQL database. Host B is provisioned as docs/deployment.md
says (the KEK-wrapped keys/ and the pki/ certificates copied from host A, nothing else): a licence
issued through A is downloaded and verified VALID through B, its files are in the shared store
(neither data directory holds a file store), and issuing through both at once gives no duplicate
identifier or licence number. A seal made on A after B was provisioned seals on B: its private key
(encrypted under the KEK) is in the database, on no host's disk."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.actors import CLI_ACTOR
from cert_authority.eseals.schemas import SealCreate, SealPublic
from cert_authority.pki.service import PkiService
from cert_authority.services import licence_services_for
from cert_authority.timeutil import utc_now
from tests.cert_authority.cli_runner import ok
from tests.cert_authority.serving import free_port, wait_until_serving
from tests.conftest import (
    FOOD_TYPE,
    ISSUER_USCC,
    KEK,
    LicenceEnv,
    Snapshots,
    example_data,
    issue_example,
    licence_env_copy,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ECAS = str(Path(sys.executable).with_name("ecas"))
PER_HOST = 12  # licences each host issues at the same time as the other


@contextmanager
def serving(data_dir: Path, database_url: str) -> Iterator[str]:
    """`ecas serve` on a free port, as one host behind the load balancer; its base URL."""
    port = free_port()
    environment = os.environ | {
        "ECAS_DATA_DIR": str(data_dir),
        "ECAS_DATABASE_URL": database_url,
        "ECAS_KEK": KEK,
        "ECAS_TSA_CLOCK": "unchecked",
        "ECAS_BASE_URL": "http://127.0.0.1:8000",  # the balancer's address, the same on every host
        "ECAS_LOG_INTERVAL_SECONDS": "0",
    }
    environment.pop("ECAS_FILE_STORE", None)  # the default on PostgreSQL: the shared database store
    server = subprocess.Popen(
        [ECAS, "serve", "--port", str(port), "--no-access-log"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        yield base
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def host_a(request: pytest.FixtureRequest, tmp_path: Path, snapshots: Snapshots, fonts: object) -> Iterator[LicenceEnv]:
    (tmp_path / "a").mkdir()
    with licence_env_copy(request, snapshots, fonts, tmp_path / "a", "postgresql") as env:  # type: ignore[arg-type]
        # Provisioning, on the first host: the certificates made on first use exist before the copy.
        env.pki.service_signer(utc_now())
        issue_example(env, FOOD_TYPE)  # a timestamped licence: the TSA certificate too
        yield env


def provision(source: Path, target: Path) -> None:
    """What the operator copies to another host: pki/, and keys/ where a host still has key files
    (with the database file store, keys made since are in the database)."""
    target.mkdir(mode=0o700)
    for folder in ("keys", "pki"):
        if (source / folder).exists():
            shutil.copytree(source / folder, target / folder)


def _new_seal_on(env: LicenceEnv) -> SealPublic:
    """A new active seal for the issuing department, its key made by the key store the settings
    choose (the database one: ECAS_FILE_STORE is unset, PostgreSQL)."""
    from cert_authority.demo import DEPARTMENTS

    department = next(d for d in DEPARTMENTS if d.uscc == ISSUER_USCC)
    services = licence_services_for(PkiService(env.settings, env.engine), env.registry)
    request = SealCreate(
        department_uscc=ISSUER_USCC,
        name=f"{department.name}电子证照专用章",
        legal_representative=department.legal_representative,
    )
    return services.seals.register(CLI_ACTOR, request, now=utc_now())


def test_two_hosts_share_one_database_and_serve_each_others_licences(
    host_a: LicenceEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = host_a
    url = env.settings.effective_database_url
    provision(env.settings.data_dir, tmp_path / "b")
    key = ApiKeyService(env.engine).create("issuer", ISSUER_USCC).key
    headers = {"Authorization": f"Bearer {key}"}
    body = {"type_code": FOOD_TYPE, "data": example_data(FOOD_TYPE)}
    with ExitStack() as stack:
        a = stack.enter_context(serving(env.settings.data_dir, url))
        b = stack.enter_context(serving(tmp_path / "b", url))

        issued = httpx.post(f"{a}/api/v1/licences", json=body, headers=headers, timeout=60)
        assert issued.status_code == 201, issued.text
        identifier = issued.json()["identifier"]
        for fmt in ("pdf", "ofd"):
            got = httpx.get(f"{b}/api/v1/licences/{identifier}/files/{fmt}", headers=headers, timeout=60)
            assert got.status_code == 200, got.text
            verdict = httpx.post(f"{b}/api/v1/verify", content=got.content, headers=headers, timeout=60)
            assert verdict.json()["result"] == "VALID", verdict.text
        by_identifier = httpx.get(f"{b}/api/v1/verify/{identifier}", headers=headers, timeout=60)
        assert by_identifier.json()["result"] == "VALID", by_identifier.text
        png = httpx.get(f"{b}/api/v1/licences/{identifier}/files/png", headers=headers, timeout=60)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")  # drawn on B, stored for A
        again = httpx.get(f"{a}/api/v1/licences/{identifier}/files/png", headers=headers, timeout=60)
        assert again.content == png.content

        def issue_through(base: str, n: int) -> list[tuple[str, str]]:
            out = []
            with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                for _ in range(n):
                    response = client.post("/api/v1/licences", json=body)
                    assert response.status_code == 201, response.text
                    out.append((response.json()["identifier"], response.json()["licence_number"]))
            return out

        with ThreadPoolExecutor(4) as pool:
            batches = [pool.submit(issue_through, base, PER_HOST // 2) for base in (a, b, a, b)]
            results = [item for batch in batches for item in batch.result()]
        assert len(results) == 2 * PER_HOST
        assert len({identifier for identifier, _ in results}) == len(results)
        assert len({number for _, number in results}) == len(results)
        for identifier_, _ in results[:: PER_HOST // 2]:  # one from each stream, checked on the other host
            for base in (a, b):
                checked = httpx.get(f"{base}/api/v1/verify/{identifier_}", headers=headers, timeout=60)
                assert checked.json()["result"] == "VALID", checked.text

        # A new seal for the issuing department, made on host A (its key by A's key store, as
        # `ecas seals register` or the approval on A would) after B was provisioned: B seals with it.
        seal = _new_seal_on(env)
        with env.engine.connect() as connection:
            label = connection.execute(
                text("SELECT key_label FROM issued_certificate WHERE serial = :s"), {"s": seal.cert_serial}
            ).scalar_one()
            in_table = text("SELECT count(*) FROM stored_key WHERE label = :l")
            assert connection.execute(in_table, {"l": label}).scalar_one() == 1
        sealed_on_b = httpx.post(f"{b}/api/v1/licences", json=body, headers=headers, timeout=60)
        assert sealed_on_b.status_code == 201, sealed_on_b.text
        new_identifier = sealed_on_b.json()["identifier"]
        with env.engine.connect() as connection:
            used = connection.execute(
                text("SELECT seal_id FROM licence WHERE identifier = :i"), {"i": new_identifier}
            ).scalar_one()
        assert used == seal.id
        for fmt in ("pdf", "ofd"):
            got = httpx.get(f"{a}/api/v1/licences/{new_identifier}/files/{fmt}", headers=headers, timeout=60)
            verdict = httpx.post(f"{a}/api/v1/verify", content=got.content, headers=headers, timeout=60)
            assert verdict.json()["result"] == "VALID", verdict.text
        for data_dir in (env.settings.data_dir, tmp_path / "b"):
            assert not (data_dir / "keys" / f"{label}.key.pem").exists()  # on no host's disk

    # A seal key that is a file on host A alone (made before keys were kept in the database, and
    # not copied in): a host without it refuses to seal, 500 misconfigured (the log names the key
    # and `ecas keys to-database`), not a 404 to the caller; once copied in, that host seals.
    provision(env.settings.data_dir, tmp_path / "c")
    with env.engine.begin() as connection:
        content = connection.execute(text("SELECT content FROM stored_key WHERE label = :l"), {"l": label}).scalar_one()
        connection.execute(text("DELETE FROM stored_key WHERE label = :l"), {"l": label})
    (env.settings.data_dir / "keys").mkdir(mode=0o700, exist_ok=True)
    (env.settings.data_dir / "keys" / f"{label}.key.pem").write_bytes(bytes(content))
    with serving(tmp_path / "c", url) as c:
        refused = httpx.post(f"{c}/api/v1/licences", json=body, headers=headers, timeout=60)
        assert refused.status_code == 500 and refused.json()["error"] == "misconfigured", refused.text
        monkeypatch.setenv("ECAS_DATA_DIR", str(env.settings.data_dir))
        monkeypatch.setenv("ECAS_DATABASE_URL", url)
        monkeypatch.setenv("ECAS_KEK", KEK)
        monkeypatch.delenv("ECAS_FILE_STORE", raising=False)
        ok("keys", "to-database")  # on host A: its older key files (the snapshot's) go in too
        with env.engine.connect() as connection:
            stored = connection.execute(text("SELECT label FROM stored_key")).scalars().all()
        assert label in stored and {"pki-root", "pki-branch"} <= set(stored), stored
        accepted = httpx.post(f"{c}/api/v1/licences", json=body, headers=headers, timeout=60)
        assert accepted.status_code == 201, accepted.text

    # Nothing but caches on the hosts: every file is in the database, neither host has a file store.
    for data_dir in (env.settings.data_dir, tmp_path / "b", tmp_path / "c"):
        assert not (data_dir / "files").exists()
        assert not (data_dir / "keys" / "data-keys.json").exists()  # the ring is in the database too
    with env.engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM licence")).scalar_one()
        stored = connection.execute(text("SELECT count(*) FROM stored_file")).scalar_one()
    assert count >= 2 + 2 * PER_HOST and stored >= 2 * count
    assert env.services.queries.get(CLI_ACTOR, identifier).identifier == identifier

"""When things break: the database goes away mid-session (a clear 503 for the API and the pages,
nothing half written) and the service recovers by itself when it returns; the file store's disk
fills up or turns read-only (a clear 503, no record, no half-written file), and recovers too."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cert_authority.http.app import create_app
from cert_authority.settings import Settings
from templates.fonts import FontSet
from tests.cert_authority.tcp_proxy import CuttableProxy
from tests.conftest import FOOD_TYPE, ISSUER_USCC, LicenceEnv, build_licence_env, example_data, table_counts


@pytest.fixture
def proxied_env(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory, fonts: FontSet, seal_picture: bytes
) -> Iterator[tuple[LicenceEnv, CuttableProxy]]:
    """An authority on PostgreSQL reached through a proxy the test can cut."""
    url = make_url(postgres_server)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    schema = f"f_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    through = url.set(port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faults") / "var",
        database_url=f"{through}?options=-csearch_path%3D{schema}",
        kek="test-passphrase",  # type: ignore[arg-type]
    )
    yield build_licence_env(settings, fonts, seal_picture), proxy
    proxy.restore()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_database_away_gives_503_and_recovers(proxied_env: tuple[LicenceEnv, CuttableProxy]) -> None:
    env, proxy = proxied_env
    app = create_app(env.settings)
    key = app.state.api_keys.create("issuer", ISSUER_USCC).key
    issuer = {"Authorization": f"Bearer {key}"}
    body = {"type_code": FOOD_TYPE, "data": example_data(FOOD_TYPE)}
    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "f-1"})
        assert first.status_code == 201, first.text
        identifier = first.json()["identifier"]
        before = table_counts(env.engine)

        proxy.cut()
        down = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "f-2"})
        assert down.status_code == 503 and down.json()["error"] == "database_unavailable", down.text
        assert "Traceback" not in down.text and "psycopg" not in down.text
        page = client.get("/wallet/login", headers={"Accept": "text/html"})
        assert page.status_code == 200  # a page that needs no database still serves
        lookup = client.get(f"/api/v1/licences/{identifier}", headers=issuer)
        assert lookup.status_code == 503

        proxy.restore()
        again = client.get(f"/api/v1/licences/{identifier}", headers=issuer)
        assert again.status_code == 200, again.text
        assert table_counts(env.engine) == before  # the failed issue left no record behind
        retried = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "f-2"})
        assert retried.status_code == 201, retried.text
        assert table_counts(env.engine)["licence"] == before["licence"] + 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs for the file store, to fill up and to make read-only (the first packed licence
    stores the two font files its subsets are recomputed from, 20 MB: docs/storage.md)."""
    where = tmp_path / "files"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_or_read_only_is_a_clear_error_with_nothing_half_written(
    small_disk: Path, tmp_path: Path, fonts: FontSet, seal_picture: bytes
) -> None:
    settings = Settings(
        data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'ecas.db'}", kek="test-passphrase"
    )  # type: ignore[arg-type]
    settings.data_dir.mkdir()
    (settings.data_dir / "files").symlink_to(small_disk)
    env = build_licence_env(settings, fonts, seal_picture)
    app = create_app(env.settings)
    issuer = {"Authorization": f"Bearer {app.state.api_keys.create('issuer', ISSUER_USCC).key}"}
    body = {"type_code": FOOD_TYPE, "data": example_data(FOOD_TYPE)}
    with TestClient(app, raise_server_exceptions=False) as client:
        records_before = records(env)
        free = shutil.disk_usage(small_disk).free
        (small_disk / "filler").write_bytes(bytes(max(0, free - 8192)))  # the disk is (almost) full
        full = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "d-1"})
        assert full.status_code == 503 and full.json()["error"] == "storage_unavailable", full.text
        assert "请联系管理员" in full.json()["message"] and str(small_disk) not in full.text
        assert records(env) == records_before  # (a serial may be skipped: numbers have gaps, never repeats)
        assert not list(small_disk.rglob("*.tmp"))  # no half-written file left behind
        (small_disk / "filler").unlink()

        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        read_only = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "d-1"})
        assert read_only.status_code == 503 and read_only.json()["error"] == "storage_unavailable"
        assert records(env) == records_before

        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
        issued = client.post("/api/v1/licences", json=body, headers={**issuer, "Idempotency-Key": "d-1"})
        assert issued.status_code == 201, issued.text
        pdf = client.get(f"/api/v1/licences/{issued.json()['identifier']}/files/pdf", headers=issuer)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")


def records(env: LicenceEnv) -> dict[str, int]:
    counts = table_counts(env.engine)
    return {table: counts[table] for table in ("licence", "licence_event", "idempotency_key", "audit_event")}

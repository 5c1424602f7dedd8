"""A city (the session's authority, copied) and a province (the same software, its own data
directory and database), joined in process: the pusher talks to the province's app through
starlette's TestClient (an httpx.Client)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.exchange.pusher import Pusher
from cert_authority.http.app import create_app
from cert_authority.settings import Settings
from cert_authority.store.db import create_db_engine, migrate
from cert_authority.store.filestore import file_store_for
from cert_authority.store.personal import personal_data_for
from tests.conftest import NOW, LicenceEnv, PostgresDatabases, make_settings

CITY_NAME = "演示市"


@dataclass
class Province:
    settings: Settings
    engine: Engine
    library: ProvinceLibrary
    client: TestClient

    def count(self, table: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


@pytest.fixture
def province(request: pytest.FixtureRequest, tmp_path: Path, licence_env: LicenceEnv) -> Iterator[Province]:
    """An empty province on the same kind of database as the city, but its own."""
    postgres: PostgresDatabases | None = None
    if licence_env.settings.effective_database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'province.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        name = postgres.create(f"p_{uuid.uuid4().hex[:10]}")
        url = postgres.url(name)
    settings = make_settings(tmp_path / "province", url)
    engine = create_db_engine(url)
    migrate(engine)
    library = ProvinceLibrary(engine, file_store_for(settings, engine), personal_data_for(settings))
    with TestClient(create_app(settings)) as client:
        yield Province(settings, engine, library, client)
    engine.dispose()
    if postgres is not None:
        postgres.drop_soon(name)


def city_chain(city: LicenceEnv) -> bytes:
    service, branch, _root = city.pki.service_signer(NOW).certificate_chain
    return service.pem + branch.pem


def register(city: LicenceEnv, province: Province) -> None:
    province.library.register_city(
        city.settings.authority_uscc, CITY_NAME, city_chain(city), city.pki.root_certificate()
    )


def pusher_for(city: LicenceEnv, province: Province, **options: object) -> Pusher:
    city.settings.province_url = "http://province.test"
    return Pusher(city.engine, city.registry.filestore, city.pki, client=province.client, **options)  # type: ignore[arg-type]

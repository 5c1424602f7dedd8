"""A provincial library beside a city, for the demo: `<data dir>/province`, its own data directory
and SQLite database, with the city registered (its certificates chain to the city's root, which the
demo's PKI names the provincial root). Running it again changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cert_authority.errors import ConflictError
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.pki.service import PkiService
from cert_authority.settings import Settings, load_settings
from cert_authority.store.db import open_database
from cert_authority.store.filestore import file_store_for

CITY_NAME = "演示市"


def province_settings(city: Settings) -> Settings:
    """`<data dir>/province`, with the database in it (whatever database the city uses)."""
    directory = city.data_dir / "province"
    return load_settings(
        data_dir=directory, database_url=f"sqlite:///{(directory / 'ecas.db').resolve()}", province_url=None
    )


def ensure_province(pki: PkiService, now: dt.datetime) -> tuple[Path, list[str]]:
    """The province's data directory, and what was done (nothing if it was there)."""
    settings = province_settings(pki.settings)
    engine = open_database(settings)
    try:
        library = ProvinceLibrary(engine, file_store_for(settings, engine))
        service, branch, root = pki.service_signer(now).certificate_chain
        try:
            library.register_city(pki.settings.authority_uscc, CITY_NAME, service.pem + branch.pem, root)
        except ConflictError:
            return settings.data_dir, []
    finally:
        engine.dispose()
    return settings.data_dir, [
        f"省级电子证照库（{settings.data_dir}）：已登记{CITY_NAME}（{pki.settings.authority_uscc}）"
    ]

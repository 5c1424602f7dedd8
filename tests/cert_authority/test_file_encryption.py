"""The file store at rest (issue 25, item 2): after a demo-like issuance (a person's licence with a
photo, a batch upload listing ID numbers), the raw bytes of the store (the files under the data
directory, or the stored_file table) hold no holder's ID number or name, while the files served
do; `ecas data encrypt-files` seals a store written before, resumably, with progress."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import demo_photo
from cert_authority.store.filestore import MAGIC, all_names
from tests.cert_authority.cli_runner import ok
from tests.cert_authority.store.test_personal_data import PERSON, PERSON_NAME
from tests.conftest import VOCATIONAL_TYPE, LicenceEnv, example_data, issue_example, overwrite_stored
from verification.report import Status

NEEDLES = [PERSON.encode(), PERSON_NAME.encode(), PERSON_NAME.encode("utf-16-be"), PERSON.encode("utf-16-be")]


def _issue(env: LicenceEnv) -> tuple[str, str]:
    """A person's licence with a photo, and a batch upload as the console stores it."""
    data = example_data(VOCATIONAL_TYPE) | {"id_number": PERSON, "holder_name": PERSON_NAME}
    licence = issue_example(env, VOCATIONAL_TYPE, data, photo=demo_photo(2)).licence
    upload = f"id_number,holder_name\n{PERSON},{PERSON_NAME}\n".encode()
    return licence.identifier, env.registry.filestore.put(upload)


def _raw_store_bytes(env: LicenceEnv) -> list[bytes]:
    """Everything the store keeps, as someone reading the disk or the table sees it."""
    if env.settings.effective_file_store == "local":
        return [p.read_bytes() for p in env.settings.files_dir.rglob("*") if p.is_file()]
    with env.engine.connect() as connection:
        return [bytes(v) for v in connection.execute(text("SELECT content FROM stored_file")).scalars()]


def _readable(data: bytes) -> bytes:
    """A file's bytes with the members of a zip (an OFD) inflated, where text would show."""
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return data + b"".join(archive.read(name) for name in archive.namelist())
    return data


def test_the_raw_store_holds_no_id_number_or_name_after_issuance(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier, upload = _issue(env)
    store = env.registry.filestore
    opened = [_readable(store.get(name)) for name in all_names(store.backend)]
    # The control: the files served show the holder (else this test would prove nothing).
    assert any(PERSON.encode() in data for data in opened) and any(PERSON_NAME.encode() in data for data in opened)
    raw = _raw_store_bytes(env)
    assert len(raw) >= len(opened) and all(value.startswith(MAGIC) for value in raw)
    for needle in NEEDLES:
        assert not any(needle in value for value in raw), needle
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    assert PERSON.encode() in store.get(upload)


def test_ecas_data_encrypt_files_seals_an_old_store_with_progress(
    licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = licence_env
    identifier, _ = _issue(env)
    store = env.registry.filestore
    names = list(all_names(store.backend))
    for name in names:  # as a store written before encryption holds them
        overwrite_stored(store, name, store.get(name))
    assert any(PERSON.encode() in value for value in _raw_store_bytes(env))
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID  # still read

    data_dir = str(env.settings.data_dir)
    monkeypatch.setenv("ECAS_DATABASE_URL", env.settings.effective_database_url)
    assert env.settings.kek is not None
    monkeypatch.setenv("ECAS_KEK", env.settings.kek.get_secret_value())
    assert f"明文 {len(names)} 个文件（共 {len(names)} 个）" in ok("--data-dir", data_dir, "data", "status")
    out = ok("--data-dir", data_dir, "data", "encrypt-files", "--batch-size", "3")
    assert "文件库：已检查 3 个文件，已加密 3 个" in out and f"完成：文件库加密 {len(names)} 个文件" in out
    assert f"明文 0 个文件（共 {len(names)} 个）" in ok("--data-dir", data_dir, "data", "status")
    assert "没有需要加密的明文文件" in ok("--data-dir", data_dir, "data", "encrypt-files")
    for needle in NEEDLES:
        assert not any(needle in value for value in _raw_store_bytes(env)), needle
    assert env.services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID

"""`ecas data encrypt` (issue 25, item 2): rows written before migration 0016 are sealed in
batches; an interrupted run loses nothing and the next one finishes the job; afterwards every
licence still verifies against its sealed file (every field came through intact)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Table, select, update

from cert_authority.actors import CLI_ACTOR
from cert_authority.data_encryption import encrypt_existing, plain_rows
from cert_authority.holders.service import ACCOUNT_TABLE
from cert_authority.issuing.personal import open_licence
from cert_authority.sharing.cases import CASE_TABLE
from cert_authority.store.models import CaseRow, HolderAccountRow, LicenceRow, StandingAuthorisationRow
from tests.cert_authority.cli_runner import ok
from tests.cert_authority.store.test_personal_data import (
    COUNTER,
    MASKED,
    PASSWORD,
    PERSON,
    PERSON_NAME,
    _issue_company,
    _issue_person,
    _populate,
)
from tests.conftest import USER_USCC, LicenceEnv
from verification.report import Status

LICENCES: Table = LicenceRow.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = HolderAccountRow.__table__  # type: ignore[attr-defined]
AUTHORISATIONS: Table = StandingAuthorisationRow.__table__  # type: ignore[attr-defined]
CASES: Table = CaseRow.__table__  # type: ignore[attr-defined]


def _as_before_0014(env: LicenceEnv) -> None:
    """Turn every sealed row back into the plain form a database before 0014 holds."""
    personal = env.services.queries.personal
    with env.engine.begin() as connection:
        for row in connection.execute(select(LICENCES)).all():
            opened = open_licence(personal, LicenceRow(**row._mapping))
            values = {k: getattr(opened, k) for k in ("holder_name", "holder_code", "face_json")}
            connection.execute(
                update(LICENCES).where(LICENCES.c.id == row.id).values(
                    **values, personal_sealed=None, face_sealed=None, holder_code_index=None
                )
            )
        for row in connection.execute(select(ACCOUNTS)).all():
            values = personal.open(row.personal_sealed, table=ACCOUNT_TABLE, row=str(row.id))
            connection.execute(
                update(ACCOUNTS).where(ACCOUNTS.c.id == row.id).values(
                    **values, personal_sealed=None, holder_code_index=None
                )
            )
        connection.execute(update(AUTHORISATIONS).values(holder_code=PERSON, holder_code_index=None))
        for row in connection.execute(select(CASES)).all():
            values = personal.open(row.applicant_sealed, table=CASE_TABLE, row=str(row.id))
            connection.execute(
                update(CASES).where(CASES.c.id == row.id).values(
                    applicant_code=values["applicant_code"], applicant_sealed=None, applicant_index=None
                )
            )


class Interrupted(Exception):
    pass


def test_an_interrupted_encryption_resumes_without_loss(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    person, company, case_id = _populate(env)
    more = [_issue_person(env), _issue_company(env), _issue_person(env)]
    _as_before_0014(env)
    before = plain_rows(env.engine)
    assert before == {
        "licence": 5,
        "holder_account": 1,
        "standing_authorisation": 1,
        "service_case": 1,
        "province_licence": 0,  # a city: the province's copies are test_province_personal's
        "province_event": 0,
    }
    with pytest.raises(Exception, match="尚未加密"):  # not read in plain text, not silently skipped
        services.queries.get(CLI_ACTOR, person)

    seen: list[tuple[str, int, int]] = []

    def stop_after_two_batches(table: str, done: int, total: int) -> None:
        seen.append((table, done, total))
        if len(seen) == 2:
            raise Interrupted  # as a kill would, between two committed batches

    with pytest.raises(Interrupted):
        encrypt_existing(env.engine, services.queries.personal, batch_size=2, progress=stop_after_two_batches)
    assert seen == [("licence", 2, 5), ("licence", 4, 5)]
    assert plain_rows(env.engine)["licence"] == 1  # two batches committed, nothing half-written

    progress: list[Any] = []
    sealed = encrypt_existing(env.engine, services.queries.personal, 2, lambda *a: progress.append(a))
    assert sealed == {
        "licence": 1,
        "holder_account": 1,
        "standing_authorisation": 1,
        "service_case": 1,
        "province_licence": 0,
        "province_event": 0,
    }
    assert progress[0] == ("licence", 1, 1)
    assert set(plain_rows(env.engine).values()) == {0}

    # Every field came through: each licence still matches the digest sealed in its OFD.
    for identifier in (person, company, *more):
        assert services.verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    holder = services.accounts.authenticate(PERSON, PASSWORD)
    assert holder.name == PERSON_NAME
    assert {s.identifier for s in services.holders.licences(holder)} == {person, more[0], more[2]}
    assert services.cases.get(COUNTER, case_id).applicant == MASKED
    authorisations = services.authorisations
    assert authorisations.find(PERSON, USER_USCC, "drainage-permit-catering", authorisations.clock())
    assert encrypt_existing(env.engine, services.queries.personal) == dict.fromkeys(before, 0)


def test_ecas_data_encrypt_prints_its_progress(licence_env: LicenceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = licence_env
    _issue_person(env), _issue_person(env), _issue_company(env)
    _as_before_0014(env)
    data_dir = str(env.settings.data_dir)
    monkeypatch.setenv("ECAS_DATABASE_URL", env.settings.effective_database_url)
    assert env.settings.kek is not None
    monkeypatch.setenv("ECAS_KEK", env.settings.kek.get_secret_value())
    assert "证照：明文 3 行" in ok("--data-dir", data_dir, "data", "status")
    out = ok("--data-dir", data_dir, "data", "encrypt", "--batch-size", "2")
    assert "证照：已加密 2/3" in out and "证照：已加密 3/3" in out and "完成：证照 3 行" in out
    assert "证照：明文 0 行" in ok("--data-dir", data_dir, "data", "status")
    assert "没有需要加密的明文个人信息" in ok("--data-dir", data_dir, "data", "encrypt")

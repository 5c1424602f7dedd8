"""Personal data at rest (issue 25, item 2), on SQLite and PostgreSQL: no holder code or name in
plain text in any table, and every move of a sealed value (or of a blind index) between rows is
caught: by SM4-GCM's associated data (the row's identity) or by the index check."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Table, select, update
from sqlmodel import SQLModel

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.demo import demo_citizen_id, demo_uscc, register_example_matters
from cert_authority.errors import NotFoundError, SealedDataError
from cert_authority.store.models import CaseRow, HolderAccountRow, LicenceRow
from cert_authority.store.personal import PassphraseDataKeys, PersonalData
from tests.conftest import FOOD_TYPE, USER_USCC, VOCATIONAL_TYPE, LicenceEnv, example_data, issue_example
from verification.report import Status

# Not the types' example values: those are in the registered definitions, by design.
PERSON = demo_citizen_id("350104", dt.date(1987, 3, 9), 47)
PERSON_NAME = "林雨桐"
MASKED = PERSON[:6] + "********" + PERSON[-4:]
COMPANY = demo_uscc("350104", 991)
PASSWORD = "personal-data-test"
COUNTER = Actor("apikey:counter", "user", USER_USCC)
CATERING = "drainage-permit-catering"


def _populate(env: LicenceEnv) -> tuple[str, str, int]:
    """A person's licence, account, standing authorisation and case; a company's licence."""
    services = env.services
    register_example_matters(services)
    person = _issue_person(env)
    company = _issue_company(env)
    holder = services.accounts.create(PERSON, PERSON_NAME, PASSWORD)
    services.authorisations.grant(holder, USER_USCC, CATERING, days=30)
    case = services.cases.open(COUNTER, CATERING, PERSON)
    return person, company, case.id


def _issue_person(env: LicenceEnv) -> str:
    data = example_data(VOCATIONAL_TYPE) | {"id_number": PERSON, "holder_name": PERSON_NAME}
    return issue_example(env, VOCATIONAL_TYPE, data).licence.identifier


def _issue_company(env: LicenceEnv) -> str:
    return issue_example(env, FOOD_TYPE, example_data(FOOD_TYPE) | {"operator_code": COMPANY}).licence.identifier


def _every_value(env: LicenceEnv) -> str:
    """Every column of every row of every table, as text (what a database dump shows)."""
    out = []
    with env.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    out.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(out)


def test_no_holder_code_or_name_in_plain_in_any_table(licence_env: LicenceEnv) -> None:
    env = licence_env
    person, company, case_id = _populate(env)
    dump = _every_value(env)
    for secret in (PERSON, PERSON_NAME, COMPANY):
        assert secret not in dump
    assert MASKED in dump  # the masked form, in the audit trail, as before
    # ...and everything still reads back.
    services = env.services
    assert services.queries.get(CLI_ACTOR, person).holder.code == PERSON
    assert services.accounts.authenticate(PERSON, PASSWORD).name == PERSON_NAME
    page = services.queries.search(CLI_ACTOR, holder_code=PERSON.lower())
    assert [i.identifier for i in page.items] == [person] and page.items[0].holder_code == MASKED
    assert services.cases.get(COUNTER, case_id).applicant == MASKED
    assert services.verification.verify_identifier(CLI_ACTOR, company).result is Status.VALID


def _swap(env: LicenceEnv, table: Table, key: str, first: object, second: object, *columns: str) -> None:
    with env.engine.begin() as connection:
        a = connection.execute(select(*(table.c[c] for c in columns)).where(table.c[key] == first)).one()
        b = connection.execute(select(*(table.c[c] for c in columns)).where(table.c[key] == second)).one()
        # Through NULL: a unique index (the accounts') allows no two equal values even for a moment.
        connection.execute(update(table).where(table.c[key] == first).values(dict.fromkeys(columns)))
        connection.execute(update(table).where(table.c[key] == second).values(dict(zip(columns, a, strict=True))))
        connection.execute(update(table).where(table.c[key] == first).values(dict(zip(columns, b, strict=True))))


LICENCES: Table = LicenceRow.__table__  # type: ignore[attr-defined]
ACCOUNTS: Table = HolderAccountRow.__table__  # type: ignore[attr-defined]
CASES: Table = CaseRow.__table__  # type: ignore[attr-defined]


@pytest.mark.parametrize("columns", [("personal_sealed",), ("personal_sealed", "holder_code_index")])
def test_sealed_licence_data_swapped_between_rows_is_caught(licence_env: LicenceEnv, columns: tuple[str, ...]) -> None:
    """Attack: give the person's licence row the company's sealed holder data (and its index):
    the company would then see, show and share a licence of someone else."""
    env = licence_env
    services = env.services
    first = _issue_company(env)
    second = _issue_person(env)
    _swap(env, LICENCES, "identifier", first, second, *columns)
    for identifier in (first, second):
        report = services.verification.verify_identifier(CLI_ACTOR, identifier)
        assert (report.result, report.reason) == (Status.INVALID, "record_mismatch")
        with pytest.raises(SealedDataError):
            services.queries.get(CLI_ACTOR, identifier)
        with pytest.raises(SealedDataError):
            services.sharing.use_licence(Actor("apikey:user", "user", USER_USCC), identifier, "办理变更")


def test_a_moved_blind_index_is_caught(licence_env: LicenceEnv) -> None:
    """Attack: only the index moves, so the company's look-ups find the person's licence."""
    env = licence_env
    company = _issue_company(env)
    person = _issue_person(env)
    _swap(env, LICENCES, "identifier", company, person, "holder_code_index")
    holder = env.services.accounts.create(COMPANY, "好味道餐饮", PASSWORD)
    with pytest.raises(SealedDataError):
        env.services.holders.licences(holder)
    with pytest.raises(SealedDataError):
        env.services.queries.search(CLI_ACTOR, holder_code=COMPANY)


def test_swapped_accounts_and_cases_are_caught(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    register_example_matters(services)
    one = services.accounts.create(PERSON, PERSON_NAME, PASSWORD)
    two = services.accounts.create(COMPANY, "好味道餐饮", PASSWORD)
    _swap(env, ACCOUNTS, "id", one.id, two.id, "personal_sealed", "holder_code_index")
    with pytest.raises(SealedDataError):
        services.accounts.authenticate(PERSON, PASSWORD)
    first = services.cases.open(COUNTER, CATERING, PERSON)
    second = services.cases.open(COUNTER, CATERING, COMPANY)
    _swap(env, CASES, "id", first.id, second.id, "applicant_sealed")
    with pytest.raises(SealedDataError):
        services.cases.get(COUNTER, first.id)
    _swap(env, CASES, "id", first.id, second.id, "applicant_sealed")  # back: it opens again
    assert services.cases.get(COUNTER, first.id).applicant == MASKED
    _swap(env, CASES, "id", first.id, second.id, "applicant_index")  # the index alone
    with pytest.raises(SealedDataError):
        services.cases.get(COUNTER, second.id)


def test_another_key_opens_nothing(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = _issue_person(env)
    other = PersonalData(PassphraseDataKeys(b"another passphrase"))
    with env.engine.connect() as connection:
        sealed = connection.execute(select(LICENCES.c.personal_sealed).where(LICENCES.c.identifier == identifier)).scalar()
    with pytest.raises(SealedDataError):
        other.open(sealed, table="licence", row=identifier)
    assert env.services.queries.personal.open(sealed, table="licence", row=identifier)["holder_code"] == PERSON
    assert other.index(PERSON) != env.services.queries.personal.index(PERSON)  # keyed: no dictionary across keys
    with pytest.raises(NotFoundError):  # a holder is found by the index of the code, nothing else
        env.services.queries.holder_licence(COMPANY, identifier)

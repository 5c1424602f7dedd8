"""Personal data at rest (issue 25, item 2), on SQLite and PostgreSQL: no holder code or name in
plain text in any table, and every move of a sealed value (or of a blind index) between rows is
caught: by SM4-GCM's associated data (the row's identity) or by the index check."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Table, select, update
from sqlmodel import SQLModel

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.demo import (
    COMPANIES,
    PERSONS,
    demo_citizen_id,
    demo_holders,
    demo_uscc,
    register_example_matters,
)
from cert_authority.errors import NotFoundError, SealedDataError
from cert_authority.services import licence_services
from cert_authority.settings import Settings
from cert_authority.store.models import CaseRow, HolderAccountRow, LicenceRow
from cert_authority.store.personal import PersonalData, RingDataKeys
from keys.aead import hmac_sm3
from keys.datakeys import DataKeyRing
from keys.errors import KeyNotFoundError
from tests.cert_authority.cli_runner import ok
from tests.conftest import FOOD_TYPE, USER_USCC, VOCATIONAL_TYPE, LicenceEnv, example_data, issue_example
from verification.report import Status
from verification.show_token import make_token

# Not the types' example values: those are in the registered definitions, by design.
PERSON = demo_citizen_id("350104", dt.date(1987, 3, 9), 47)
PERSON_NAME = "林雨桐"
MASKED = PERSON[:6] + "********" + PERSON[-4:]
COMPANY = demo_uscc("350104", 991)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
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


@pytest.mark.parametrize(
    "columns", [("personal_sealed",), ("face_sealed",), ("personal_sealed", "face_sealed", "holder_code_index")]
)
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


def test_a_swapped_holder_is_caught_by_a_show_token_check_after_a_remembered_one(licence_env: LicenceEnv) -> None:
    """The show-token check remembers the holder it opened, keyed by the sealed values as stored:
    values swapped in afterwards are a new key, opened afresh and refused."""
    env = licence_env
    first, second = _issue_company(env), _issue_person(env)
    counter = Actor("apikey:user", "user", USER_USCC)
    signer = env.pki.service_signer(dt.datetime.now(dt.timezone.utc))

    def check(identifier: str) -> tuple[Status, str]:
        token, _ = make_token(signer, identifier, {}, dt.datetime.now(dt.timezone.utc), dt.timedelta(minutes=5))
        report = env.services.show_tokens.verify(counter, token)
        return report.result, report.reason

    assert check(first) == check(first) == (Status.VALID, "ok")  # the second from the remembered holder
    _swap(env, LICENCES, "identifier", first, second, "personal_sealed")
    assert check(first) == (Status.INVALID, "record_mismatch")


def test_the_face_data_put_in_place_of_the_holder_does_not_open(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = _issue_person(env)
    with env.engine.begin() as connection:
        connection.execute(
            update(LICENCES).where(LICENCES.c.identifier == identifier).values(personal_sealed=LICENCES.c.face_sealed)
        )
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "record_mismatch")


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


def test_another_key_opens_nothing(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    identifier = _issue_person(env)
    other = PersonalData(RingDataKeys(DataKeyRing(tmp_path / "other-keys.json", b"another passphrase")))
    with env.engine.connect() as connection:
        query = select(LICENCES.c.personal_sealed).where(LICENCES.c.identifier == identifier)
        sealed = connection.execute(query).scalar()
    with pytest.raises(SealedDataError):
        other.open(sealed, table="licence", row=identifier)
    assert env.services.queries.personal.open(sealed, table="licence", row=identifier)["holder_code"] == PERSON
    assert other.index(PERSON) != env.services.queries.personal.index(PERSON)  # keyed: no dictionary across keys
    with pytest.raises(NotFoundError):  # a holder is found by the index of the code, nothing else
        env.services.queries.holder_licence(COMPANY, identifier)


@pytest.mark.slow
def test_the_demo_database_file_holds_no_holder_code_or_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's proof: the raw bytes of a demo's SQLite file (and its WAL, if any) contain no
    holder's ID number, USCC or personal name, in UTF-8 or as ASCII digits."""
    monkeypatch.delenv("ECAS_KEK", raising=False)
    monkeypatch.delenv("ECAS_DATABASE_URL", raising=False)
    data = tmp_path / "demo"
    out = ok("--data-dir", str(data), "demo", "--no-serve")
    assert "颁发职业资格证书 10 份" in out
    raw = b"".join(p.read_bytes() for p in sorted(data.glob("ecas.db*")) if p.is_file())
    assert len(raw) > 100_000
    persons = [(p.id_number(i), p.name) for i, p in enumerate(PERSONS)]  # the demo's 20 holders
    holders = [(c.uscc(i), c.name) for i, c in enumerate(COMPANIES)] + persons
    for code, _ in holders:
        assert code.encode() not in raw, f"{code[:6]}… in the database file"
    # A type's definition has sample values (its `example`s), registered with it by design: a
    # name that is one of those is there for that reason.
    samples = "".join(p.read_text(encoding="utf-8") for p in (EXAMPLES / "types").glob("*.yaml"))
    for _, name in persons:
        if name not in samples:
            assert name.encode() not in raw, "a person's name in the database file"
    # The demo reads them back: the wallet's person logs in and sees their licences.
    settings = Settings(data_dir=data)
    services = licence_services(settings)
    code, name = next(h for h in demo_holders() if h in persons)
    holder = services.accounts.holder(code)
    assert holder.name == name and services.holders.licences(holder)


class _Ring:
    """The two calls RingDataKeys makes of a key ring (keys.datakeys.DataKeyRing, branch mipin):
    versioned random secrets, subkeys by HMAC-SM3 of the label."""

    @dataclass(frozen=True)
    class Key:
        version: int
        secret: bytes

        def subkey(self, label: str, length: int = 32) -> bytes:
            return hmac_sm3(self.secret, f"ecas-subkey|pii|{label}".encode())[:length]

    def __init__(self) -> None:
        self.keys: dict[int, _Ring.Key] = {}

    def current(self, purpose: str) -> _Ring.Key:
        return self.keys[max(self.keys)] if self.keys else self.rotate()

    def get(self, purpose: str, version: int) -> _Ring.Key:
        if version not in self.keys:
            raise KeyNotFoundError(f"no version {version}")
        return self.keys[version]

    def rotate(self) -> _Ring.Key:
        key = self.keys[len(self.keys) + 1] = _Ring.Key(len(self.keys) + 1, os.urandom(32))
        return key


def test_ring_keys_rotate_without_losing_old_values_or_indexes() -> None:
    ring = _Ring()
    personal = PersonalData(RingDataKeys(ring))
    old = personal.seal({"holder_code": PERSON}, table="service_case", row="7")
    index = personal.index(PERSON)
    ring.rotate()
    new = personal.seal({"holder_code": PERSON}, table="service_case", row="8")
    assert old.startswith("v1.") and new.startswith("v2.")
    assert personal.open(old, table="service_case", row="7") == personal.open(new, table="service_case", row="8")
    assert personal.index(PERSON) == index  # look-ups still find rows indexed before the rotation
    with pytest.raises(SealedDataError, match="数据密钥"):
        personal.open("v9." + new.partition(".")[2], table="service_case", row="8")
    with pytest.raises(SealedDataError):  # v2's value relabelled v1: v1's key does not open it
        personal.open("v1." + new.partition(".")[2], table="service_case", row="8")

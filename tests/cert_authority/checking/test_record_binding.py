"""Attack (issue 21, part 3): a record edited in the database kept its VALID verdict when the edit
was in a field the page does not show exactly (holder_name, holder_code, a key added to the face
data), and a changed holder code let another holder show the licence. The record's digest is now
sealed into the OFD; any edit is INVALID record_mismatch, and the licence is neither shown nor
used until the issuer has looked at it.

Since issue 25 the holder's name and code and the face data are sealed (SM4-GCM) in the row: an
edit by someone without the data key does not even open (tests/cert_authority/store/
test_personal_data.py). Here the attacker has the data key and seals the edited values anew, as
`_edit` does: the sealed OFD still catches it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session, col, select, update

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.errors import RecordMismatchError
from cert_authority.issuing.binding import RECORD_SM3, record_digest
from cert_authority.issuing.personal import open_licence, sealed_columns
from cert_authority.store.models import LicenceRow
from tests.conftest import FOOD_TYPE, USER_USCC, LicenceEnv, example_data, issue_example
from verification.ofd_file import inspect_ofd
from verification.report import Status

HOLDER = example_data(FOOD_TYPE)["operator_code"]
PASSWORD = "record-binding-1"
PERSONAL_FIELDS = ("holder_name", "holder_code", "face_json")


def _edit(env: LicenceEnv, identifier: str, **values: Any) -> None:
    """Edit the row; personal fields are sealed again with the service's own data key."""
    personal = env.services.queries.personal
    opened = _row(env, identifier)
    edited = LicenceRow(**(opened.model_dump() | values))
    stored = {k: v for k, v in values.items() if k not in PERSONAL_FIELDS}
    if set(values) & set(PERSONAL_FIELDS):
        stored |= sealed_columns(personal, edited)
    with Session(env.registry.engine) as session:
        session.exec(update(LicenceRow).where(col(LicenceRow.identifier) == identifier).values(**stored))
        session.commit()


def _row(env: LicenceEnv, identifier: str) -> LicenceRow:
    with Session(env.registry.engine) as session:
        row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).one()
    return open_licence(env.services.queries.personal, row)


def test_the_sealed_ofd_carries_the_records_digest(licence_env: LicenceEnv) -> None:
    licence = issue_example(licence_env, FOOD_TYPE).licence
    ofd = licence_env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    row = _row(licence_env, licence.identifier)
    assert inspect_ofd(ofd).custom_data[RECORD_SM3] == record_digest(row)


@pytest.mark.parametrize(
    "edit",
    [
        {"holder_name": "冒名顶替餐饮有限公司"},
        {"holder_code": "91350100MA00070007"},
        {"licence_number": "JY99999999999999"},
        {"face_json": "extra key"},
        {"seal_name": "另一部门电子证照专用章"},
    ],
    ids=["holder_name", "holder_code", "licence_number", "face_key_added", "seal_name"],
)
def test_any_edit_of_the_record_is_invalid(licence_env: LicenceEnv, edit: dict[str, str]) -> None:
    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    verification = env.services.verification
    assert verification.verify_identifier(CLI_ACTOR, identifier).result is Status.VALID
    if edit.get("face_json") == "extra key":
        face = json.loads(_row(env, identifier).face_json) | {"licence_scope": "含网络销售"}
        edit = {"face_json": json.dumps(face, ensure_ascii=False)}
    _edit(env, identifier, **edit)
    report = verification.verify_identifier(CLI_ACTOR, identifier)
    assert (report.result, report.reason) == (Status.INVALID, "record_mismatch")


def test_a_changed_holder_code_does_not_let_another_holder_show_or_anyone_use_it(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    intruder = "91350100MA00070007"
    services.accounts.create(intruder, "冒名顶替餐饮有限公司", PASSWORD)
    services.sharing.allow_duty(CLI_ACTOR, USER_USCC, FOOD_TYPE)
    _edit(env, identifier, holder_code=intruder)
    holder = services.accounts.authenticate(intruder, PASSWORD)
    with pytest.raises(RecordMismatchError, match="登记记录与盖章文件不一致"):
        services.holders.show_token(holder, identifier)
    with pytest.raises(RecordMismatchError):
        services.sharing.use_licence(Actor("apikey:user", "user", USER_USCC), identifier, "办理变更")


def test_a_record_edited_after_a_use_gets_no_annotated_copy(licence_env: LicenceEnv) -> None:
    """The annotated copy is made on its link's first download: a record edited between the use
    and that download is not laid out and sealed into a copy (409), and nothing is stored."""
    env = licence_env
    services = env.services
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    services.sharing.allow_duty(CLI_ACTOR, USER_USCC, FOOD_TYPE)
    user = Actor("apikey:user", "user", USER_USCC)
    kept = services.sharing.use_licence(user, identifier, "办理变更")
    edited = services.sharing.use_licence(user, identifier, "办理延续")
    first = services.sharing.shared_file(kept.copy_token)
    _edit(env, identifier, licence_number="JY99999999999999")
    with pytest.raises(RecordMismatchError):
        services.sharing.shared_file(edited.copy_token)
    assert services.sharing.shared_file(kept.copy_token) == first  # made before the edit: kept as it was

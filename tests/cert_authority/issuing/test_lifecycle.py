"""The licence lifecycle (cert_authority.issuing.lifecycle and IssuanceService.change_licence): change makes
version .002 and supersedes .001, revoke and cancel need a reason, expiry is derived from the
validity dates, every step is in the history and the audit trail, and illegal steps are 409 with a
clear message, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.demo import demo_citizen_id
from cert_authority.errors import (
    IllegalTransitionError,
    InvalidRequestError,
    LicenceDataError,
    NotFoundError,
    PermissionDeniedError,
)
from cert_authority.issuing.lifecycle import LifecycleService
from cert_authority.issuing.queries import LicenceQueryService
from cert_authority.store.models import AuditEventRow
from keys.errors import InvalidCodeError
from templates.identifier import LicenceIdentifier
from tests.conftest import (
    DRAINAGE_TYPE,
    FOOD_TYPE,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    VOCATIONAL_TYPE,
    LicenceEnv,
    example_data,
    flip_stored_bit,
    issue_example,
    overwrite_stored,
    stored_name,
    table_counts,
)

ISSUER = Actor("apikey:1", "issuer", ISSUER_USCC)
OTHER_ISSUER = Actor("apikey:2", "issuer", OTHER_ISSUER_USCC)


def test_change_makes_version_two_and_supersedes_version_one(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    first = issue_example(env, FOOD_TYPE, actor=ISSUER, issuer_uscc=None).licence
    update = {"premises": "演示市鼓楼区五四路102号", "legal_representative": "林晓明"}
    changed = env.services.issuance.change_licence(ISSUER, first.identifier, update, reason="经营场所变更")
    old_id, new_id = LicenceIdentifier.parse(first.identifier), LicenceIdentifier.parse(changed.identifier)
    assert (new_id.serial, new_id.version, new_id.type_code) == (old_id.serial, 2, old_id.type_code)
    assert changed.identifier.split(".")[-2] == "002" and changed.identifier != first.identifier
    assert changed.licence_number == first.licence_number and changed.status == "issued"
    assert changed.data["premises"] == "演示市鼓楼区五四路102号" and changed.data["legal_representative"] == "林晓明"
    assert changed.data["operator_name"] == first.data["operator_name"]
    assert (changed.valid_from, changed.valid_until) == (first.valid_from, first.valid_until)
    assert changed.files.pdf != first.files.pdf  # rendered and sealed anew

    old = env.services.queries.get(ISSUER, first.identifier)
    assert (old.status, old.superseded_by, old.status_reason) == ("superseded", changed.identifier, "经营场所变更")
    history = env.services.queries.history(ISSUER, changed.identifier)
    assert [(e.identifier, e.action, e.previous_status, e.status) for e in history] == [
        (first.identifier, "issue", None, "issued"),
        (first.identifier, "change", "issued", "superseded"),
        (changed.identifier, "change", None, "issued"),
    ]
    assert env.services.queries.history(ISSUER, first.identifier) == history  # one history for all versions

    with pytest.raises(IllegalTransitionError, match=r"已变更为新版本.*不能变更"):
        env.services.issuance.change_licence(ISSUER, first.identifier, {"premises": "别处"})
    with pytest.raises(IllegalTransitionError, match="不能吊销"):
        env.services.lifecycle.revoke(ISSUER, first.identifier, "违法经营")
    third = env.services.issuance.change_licence(ISSUER, changed.identifier, {"legal_representative": "林大明"})
    assert third.identifier.split(".")[-2] == "003"

    with Session(env.registry.engine) as session:
        [audit] = session.exec(select(AuditEventRow).where(AuditEventRow.target == changed.identifier)).all()
    detail = json.loads(audit.detail_json or "{}")
    assert (audit.action, detail["supersedes"], detail["changed_fields"]) == (
        "change", first.identifier, ["legal_representative", "premises"])


def test_bad_changes_store_nothing(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    licence = issue_example(env, VOCATIONAL_TYPE).licence
    counts = table_counts(env.engine)
    other_person = demo_citizen_id("110105", dt.date(1990, 5, 17), 12)
    with pytest.raises(LicenceDataError, match="持证主体代码不能变更"):
        env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"id_number": other_person})
    with pytest.raises(LicenceDataError, match="「等级」取值无效"):
        env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"grade": "特级"})
    with pytest.raises(LicenceDataError, match="holder_name「姓名」：缺少必填字段"):
        env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"holder_name": None})
    with pytest.raises(LicenceDataError, match="由类型规定"):
        env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {}, valid_until=dt.date(2040, 1, 1))
    with pytest.raises(PermissionDeniedError):
        env.services.issuance.change_licence(ISSUER, licence.identifier, {"grade": "二级/技师"})
    # Nothing to change (found trying the CLI as a user: it made version 002 superseding 001).
    for same in ({}, {"grade": licence.data["grade"]}):
        with pytest.raises(LicenceDataError, match="没有需要变更的内容"):
            env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, same)
    assert table_counts(env.engine) == counts
    # The photo is kept when none is given.
    changed = env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"grade": "二级/技师"})
    assert changed.photo_sm3 == licence.photo_sm3 and changed.data["grade"] == "二级/技师"


def test_given_validity_can_change(shared_licence_env: LicenceEnv) -> None:
    licence = issue_example(shared_licence_env, DRAINAGE_TYPE).licence
    changed = shared_licence_env.services.issuance.change_licence(
        CLI_ACTOR, licence.identifier, {"daily_volume": "400"}, valid_until=dt.date(2031, 6, 30), reason="延续"
    )
    assert (changed.valid_from, changed.valid_until) == (dt.date(2026, 1, 1), dt.date(2031, 6, 30))


def test_revoke_and_cancel_need_reasons_and_end_the_licence(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    lifecycle = env.services.lifecycle
    revoked = issue_example(env, FOOD_TYPE).licence
    with pytest.raises(InvalidRequestError, match="须说明原因"):
        lifecycle.revoke(ISSUER, revoked.identifier, "  ")
    with pytest.raises(PermissionDeniedError):
        lifecycle.revoke(OTHER_ISSUER, revoked.identifier, "违法经营")
    result = lifecycle.revoke(ISSUER, revoked.identifier, "违法经营，依法吊销")
    assert (result.status, result.status_reason) == ("revoked", "违法经营，依法吊销")
    with pytest.raises(IllegalTransitionError, match=r"已吊销.*原因：违法经营，依法吊销.*不能吊销"):
        lifecycle.revoke(ISSUER, revoked.identifier, "again")
    with pytest.raises(IllegalTransitionError, match=r"已吊销.*不能注销"):
        lifecycle.cancel(ISSUER, revoked.identifier, "歇业")
    with pytest.raises(IllegalTransitionError, match="不能变更"):
        env.services.issuance.change_licence(ISSUER, revoked.identifier, {"premises": "x"})

    cancelled = issue_example(env, FOOD_TYPE).licence
    assert lifecycle.cancel(ISSUER, cancelled.identifier, "申请人歇业").status == "cancelled"
    with pytest.raises(IllegalTransitionError, match=r"已注销.*不能吊销"):
        lifecycle.revoke(ISSUER, cancelled.identifier, "违法经营")
    history = env.services.queries.history(ISSUER, cancelled.identifier)
    assert [(e.action, e.status, e.reason) for e in history] == [
        ("issue", "issued", None),
        ("cancel", "cancelled", "申请人歇业"),
    ]
    with Session(env.registry.engine) as session:
        targets = [revoked.identifier, cancelled.identifier]
        actions = [e.action for e in session.exec(select(AuditEventRow).where(col(AuditEventRow.target).in_(targets)))]
    assert sorted(actions) == ["cancel", "issue", "issue", "revoke"]


def test_expiry_is_derived_from_the_validity_dates(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    licence = issue_example(env, DRAINAGE_TYPE).licence  # valid until 2030-12-31
    later = dt.datetime(2031, 1, 1, 1, 0, tzinfo=dt.timezone.utc)  # 2031-01-01 09:00 in Beijing
    queries = LicenceQueryService(
        env.registry.engine, env.registry.filestore, env.services.queries.images, env.services.queries.personal,
        clock=lambda: later,
    )
    assert env.services.queries.get(CLI_ACTOR, licence.identifier).status == "issued"
    assert queries.get(CLI_ACTOR, licence.identifier).status == "expired"
    expired = queries.search(CLI_ACTOR, type_code=DRAINAGE_TYPE, status="expired").items
    assert licence.identifier in [i.identifier for i in expired]
    valid = queries.search(CLI_ACTOR, status="issued", page_size=200).items
    assert licence.identifier not in [i.identifier for i in valid]
    history = queries.history(CLI_ACTOR, licence.identifier)
    assert [(e.action, e.status, e.derived) for e in history] == [
        ("issue", "issued", False),
        ("expire", "expired", True),
    ]

    lifecycle = LifecycleService(env.registry.engine, env.services.lifecycle.personal, clock=lambda: later)
    with pytest.raises(IllegalTransitionError, match="有效期已于 2030-12-31 届满，只能注销"):
        lifecycle.revoke(CLI_ACTOR, licence.identifier, "违法排水")
    with pytest.raises(IllegalTransitionError, match="已过期"):
        env.services.issuance.change_licence(CLI_ACTOR, licence.identifier, {"daily_volume": "1"}, now=later)
    cancelled = lifecycle.cancel(CLI_ACTOR, licence.identifier, "有效期届满未延续，依法注销")
    assert cancelled.status == "cancelled"
    assert queries.history(CLI_ACTOR, licence.identifier)[-1].previous_status == "expired"


def test_unknown_and_malformed_identifiers(shared_licence_env: LicenceEnv) -> None:
    licence = issue_example(shared_licence_env, FOOD_TYPE).licence
    parsed = LicenceIdentifier.parse(licence.identifier)
    unknown = str(LicenceIdentifier(parsed.type_code, parsed.issuer_code, "9999999999", 1))
    with pytest.raises(NotFoundError):
        shared_licence_env.services.queries.get(CLI_ACTOR, unknown)
    wrong_check = licence.identifier[:-1] + ("A" if licence.identifier[-1] != "A" else "B")
    with pytest.raises(InvalidCodeError, match="校验位错误"):
        shared_licence_env.services.lifecycle.revoke(CLI_ACTOR, wrong_check, "x")


def test_reads_follow_roles(shared_licence_env: LicenceEnv) -> None:
    queries = shared_licence_env.services.queries
    licence = issue_example(shared_licence_env, FOOD_TYPE).licence
    assert queries.get(ISSUER, licence.identifier).identifier == licence.identifier
    assert queries.get(Actor("apikey:3", "auditor", OTHER_ISSUER_USCC), licence.identifier)
    with pytest.raises(PermissionDeniedError):
        queries.get(OTHER_ISSUER, licence.identifier)
    with pytest.raises(PermissionDeniedError):  # using departments: sharing rules come later
        queries.get(Actor("apikey:4", "user", ISSUER_USCC), licence.identifier)
    page = queries.search(ISSUER, page_size=200)
    assert page.items and {i.issuer_code for i in page.items} == {ISSUER_USCC}
    with pytest.raises(PermissionDeniedError):
        queries.search(ISSUER, issuer=OTHER_ISSUER_USCC)


def test_list_masks_holder_codes_and_pages(shared_licence_env: LicenceEnv) -> None:
    env = shared_licence_env
    code = example_data(VOCATIONAL_TYPE)["id_number"]
    for _ in range(3):
        issue_example(env, VOCATIONAL_TYPE)
    page = env.services.queries.search(CLI_ACTOR, holder_code=code, page_size=2)
    total = page.total
    assert total >= 3 and len(page.items) == 2
    assert all(i.holder_code == "110105********002X" for i in page.items)
    assert code not in page.model_dump_json()
    rest = env.services.queries.search(CLI_ACTOR, holder_code=code.lower(), page=2, page_size=2)
    assert rest.total == total and not {i.identifier for i in rest.items} & {i.identifier for i in page.items}
    with pytest.raises(InvalidRequestError, match="未知状态"):
        env.services.queries.search(CLI_ACTOR, status="lost")
    with pytest.raises(InvalidRequestError, match="page_size"):
        env.services.queries.search(CLI_ACTOR, page_size=1000)


def test_files_are_checked_when_read(shared_licence_env: LicenceEnv) -> None:
    licence = issue_example(shared_licence_env, FOOD_TYPE).licence
    ofd = shared_licence_env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    assert zipfile.is_zipfile(io.BytesIO(ofd))
    store = shared_licence_env.registry.filestore
    manifest = stored_name(shared_licence_env, licence.files.ofd)  # the OFD's manifest (store.packing)
    stored = flip_stored_bit(store, manifest, -1)
    with pytest.raises(Exception, match="已损坏"):
        shared_licence_env.services.queries.file(CLI_ACTOR, licence.identifier, "ofd")
    overwrite_stored(store, manifest, stored)

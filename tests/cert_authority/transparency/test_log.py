"""The transparency log on a real authority (SQLite and PostgreSQL): every issue, change,
revocation and cancellation is a leaf; proofs from the tiles check with the separate RFC 9162
verifier; the head's SM2 signature checks with the OpenSSL CLI and gmssl; and edited records,
edited or removed leaves, edited tiles and un-revoked licences are caught by verification."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR
from cert_authority.issuing.binding import record_digest
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.issuing.log_leaves import backfill_log
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.schemas import LicencePublic
from cert_authority.pki.service import PkiService
from cert_authority.store.models import LicenceRow
from cert_authority.transparency.log import TransparencyLog
from tests.conftest import FOOD_TYPE, ISSUER_USCC, LicenceEnv, example_data, gmssl_verify, issue_example, openssl
from tests.verification import rfc9162_verifier as rfc
from verification.transparency import LogLeaf, record_commitment


def _all_leaves(env: LicenceEnv) -> list[bytes]:
    with env.engine.connect() as connection:
        rows = connection.execute(text("SELECT leaf FROM log_entry ORDER BY leaf_index")).all()
    return [bytes(row[0]) for row in rows]


def _row(env: LicenceEnv, identifier: str) -> LicenceRow:
    """The record with its personal data opened (what leaves bind: see store.personal)."""
    with Session(env.engine) as session:
        row = session.exec(select(LicenceRow).where(col(LicenceRow.identifier) == identifier)).one()
    return open_licence(env.services.personal, row)


def _log_check(env: LicenceEnv, identifier: str):  # type: ignore[no-untyped-def]
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    return report, next(check for check in report.checks if check.name == "log")


def test_every_event_is_a_leaf_proved_under_a_signed_head(licence_env: LicenceEnv) -> None:
    env = licence_env
    services = env.services
    first = issue_example(env, FOOD_TYPE).licence
    data = example_data(FOOD_TYPE)
    batch = services.issuance.issue_many(
        CLI_ACTOR,
        FOOD_TYPE,
        [IssueRequest({**data, "operator_name": f"演示餐饮{n}号店"}) for n in range(3)],
        ISSUER_USCC,
    )
    second, third, fourth = (outcome.result.licence for outcome in batch)  # type: ignore[union-attr]
    changed = services.issuance.change_licence(CLI_ACTOR, second.identifier, {"premises": "演示市鼓楼区五四路102号"})
    services.lifecycle.revoke(CLI_ACTOR, third.identifier, "违法经营")
    services.lifecycle.cancel(CLI_ACTOR, fourth.identifier, "申请注销")
    head = services.log.integrate()
    assert head is not None and head.tree_size == 7
    assert services.log.integrate() is None  # nothing queued: no new head

    leaves = _all_leaves(env)
    events = [(leaf.identifier, leaf.event) for leaf in map(LogLeaf.decode, leaves)]
    assert events == [
        (first.identifier, "issue"),
        (second.identifier, "issue"),
        (third.identifier, "issue"),
        (fourth.identifier, "issue"),
        (changed.identifier, "change"),
        (third.identifier, "revoke"),
        (fourth.identifier, "cancel"),
    ]
    # The root is MTH over the leaves, computed by the separate verifier from the leaf bytes.
    assert head.root_hash == rfc.mth(rfc.sm3, leaves)
    # The leaf says what the registry holds: files' SM3 and the record's digest.
    row = _row(env, changed.identifier)
    leaf = LogLeaf.decode(leaves[4])
    assert (leaf.version, dict(leaf.files)) == (
        2,
        {"pdf": bytes.fromhex(row.pdf_sm3), "ofd": bytes.fromhex(row.ofd_sm3)},
    )
    # Format 2: a salted commitment to the record's digest, not the digest (issue 22's privacy fix).
    salt = services.personal.record_salt(changed.identifier)
    assert leaf.format == 2 and leaf.record_sm3 == record_commitment(salt, bytes.fromhex(record_digest(row)))
    for index, leaf_bytes in enumerate(leaves):
        proof = services.log.inclusion(index, leaf_bytes, head)
        assert rfc.inclusion_holds(rfc.sm3, index, head.tree_size, leaf_bytes, proof.hashes, head.root_hash)

    report, check = _log_check(env, first.identifier)
    assert report.result.value == "VALID"
    assert check.status.value == "VALID" and f"logged at index 0 under head {head.label}" in check.message
    _, revoked = _log_check(env, third.identifier)
    assert revoked.status.value == "VALID" and "logged at index 2" in revoked.message


def test_the_log_keeps_its_name_when_the_service_address_changes(licence_env: LicenceEnv) -> None:
    """Found trying the demo as a user: `ecas audit anchor` run without the server's ECAS_BASE_URL
    signed the next head under another name, and every witness then saw two logs."""
    env = licence_env
    issue_example(env, FOOD_TYPE)
    first = env.services.log.integrate()
    assert first is not None
    moved = env.services.log.pki.settings.model_copy(update={"base_url": "https://elsewhere.example:9443"})
    log = TransparencyLog(env.engine, PkiService(moved, env.engine))
    issue_example(env, FOOD_TYPE, {**example_data(FOOD_TYPE), "operator_name": "演示餐饮另一号店"})
    second = log.integrate()
    assert second is not None and second.tree_size > first.tree_size
    assert second.origin == first.origin and "elsewhere" not in second.origin


def test_head_signature_checks_with_openssl_and_gmssl(licence_env: LicenceEnv, tmp_path: Path) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    head = env.services.log.integrate()
    assert head is not None
    certificate = env.pki.service_signer(dt.datetime.now(dt.timezone.utc)).certificate_chain[0]
    (tmp_path / "body").write_bytes(head.body)
    (tmp_path / "sig.der").write_bytes(head.signature)
    (tmp_path / "service.pem").write_bytes(certificate.public_key.to_pem())
    result = openssl(
        "dgst",
        "-sm3",
        "-verify",
        str(tmp_path / "service.pem"),
        "-sigopt",
        "distid:1234567812345678",
        "-signature",
        str(tmp_path / "sig.der"),
        str(tmp_path / "body"),
    )
    assert b"Verified OK" in result.stdout
    assert gmssl_verify(certificate.public_key, head.signature, head.body)
    (tmp_path / "body").write_bytes(head.body.replace(b"\n1\n", b"\n2\n"))
    tampered = openssl(
        "dgst",
        "-sm3",
        "-verify",
        str(tmp_path / "service.pem"),
        "-sigopt",
        "distid:1234567812345678",
        "-signature",
        str(tmp_path / "sig.der"),
        str(tmp_path / "body"),
        check=False,
    )
    assert tampered.returncode != 0
    # The signed note (the tiles' checkpoint) carries the same signature after the key id.
    note = head.note(certificate).decode()
    body, signature_line = note.split("\n\n")
    assert body + "\n" == head.body.decode()
    name, encoded = signature_line.removeprefix("\u2014 ").split()
    assert name == head.origin and base64.b64decode(encoded)[4:] == head.signature


def test_an_edited_record_is_caught_by_the_log(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.log.integrate()
    # The holder's name is sealed (store.personal): this attacker has the data key and seals anew.
    from cert_authority.issuing.personal import sealed_columns

    personal = env.services.personal
    table = LicenceRow.__table__  # type: ignore[attr-defined]
    with env.engine.begin() as connection:
        stored = connection.execute(table.select().where(table.c.identifier == licence.identifier)).one()
        row = open_licence(personal, LicenceRow(**stored._mapping))
        row.holder_name = "冒名顶替有限公司"
        connection.execute(
            table.update().where(table.c.identifier == licence.identifier).values(**sealed_columns(personal, row))
        )
    report, check = _log_check(env, licence.identifier)
    assert report.result.value == "INVALID"
    assert (check.status.value, check.reason) == ("INVALID", "log_mismatch")


def test_a_leaf_edited_with_its_record_fails_the_proof(licence_env: LicenceEnv) -> None:
    """Whoever edits the record and writes a matching leaf still cannot match the signed tree."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    issue_example(env, FOOD_TYPE)
    env.services.log.integrate()
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE licence SET valid_until = NULL WHERE identifier = :id"), {"id": licence.identifier}
        )
    from cert_authority.issuing.log_leaves import licence_leaf

    row = _row(env, licence.identifier)
    forged = licence_leaf(row, "issue", row.created_at, env.services.personal).encode()
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE log_entry SET leaf = :leaf WHERE identifier = :id"), {"leaf": forged, "id": licence.identifier}
        )
    _, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_proof_failed")


def test_an_edited_tile_fails_the_proof(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    issue_example(env, FOOD_TYPE)
    env.services.log.integrate()
    with env.engine.begin() as connection:
        data = bytes(connection.execute(text("SELECT hashes FROM log_tile WHERE level = 0 AND idx = 0")).scalar_one())
        connection.execute(
            text("UPDATE log_tile SET hashes = :h WHERE level = 0 AND idx = 0"), {"h": data[:32] + bytes(32)}
        )
    env.services.log.tiles.clear()  # this process had read the tile before it was edited
    _, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_proof_failed")


def test_a_removed_leaf_is_indeterminate_until_backfilled(licence_env: LicenceEnv) -> None:
    """A licence whose leaf is gone (or that was issued before the log existed) is INDETERMINATE
    not_logged; `backfill_log` queues what is missing, once."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "违法经营")
    with env.engine.begin() as connection:
        connection.execute(text("DELETE FROM log_entry WHERE identifier = :id"), {"id": licence.identifier})
    report, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INDETERMINATE", "not_logged")
    assert report.result.value == "INVALID"  # revoked: the status check decides the verdict
    personal = env.services.personal
    assert backfill_log(env.engine, personal, dt.datetime.now(dt.timezone.utc)) == 2  # issue and revoke
    assert backfill_log(env.engine, personal, dt.datetime.now(dt.timezone.utc)) == 0
    _, check = _log_check(env, licence.identifier)
    assert check.status.value == "VALID"


def _un_revoked(env: LicenceEnv) -> LicencePublic:
    """A licence revoked (its revocation logged), then set back to issued in the database."""
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.lifecycle.revoke(CLI_ACTOR, licence.identifier, "违法经营")
    env.services.log.integrate()
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE licence SET status = 'issued', status_reason = NULL WHERE identifier = :id"),
            {"id": licence.identifier},
        )
    return licence


def test_a_licence_un_revoked_in_the_database_contradicts_the_log(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = _un_revoked(env)
    report, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_status_mismatch")
    assert report.result.value == "INVALID"


def test_a_failed_issue_logs_nothing(licence_env: LicenceEnv) -> None:
    """The leaf is written in the issuance's transaction: a request refused writes no leaf."""
    env = licence_env
    outcomes = env.services.issuance.issue_many(
        CLI_ACTOR, FOOD_TYPE, [IssueRequest({"operator_name": ""})], ISSUER_USCC
    )
    assert outcomes[0].error is not None
    assert _all_leaves(env) == []


def test_a_head_with_a_forged_signature_or_root_is_refused(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    head = env.services.log.integrate()
    assert head is not None
    _, check = _log_check(env, licence.identifier)
    assert check.status.value == "VALID"
    other = bytes(32) if head.root_hash != bytes(32) else b"\x01" * 32
    with env.engine.begin() as connection:
        connection.execute(text("UPDATE log_head SET root_hash = :root"), {"root": other})
    _, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_proof_failed")
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE log_head SET root_hash = :root, signature = :sig"),
            {"root": head.root_hash, "sig": head.signature[:-1] + b"\x00"},
        )
    _, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_proof_failed") and "签名" in check.message


# --- the log check remembered (checking.licences): what makes it be made again -------------------
def test_a_remembered_log_check_is_made_again_when_an_event_is_logged_for_the_licence(licence_env: LicenceEnv) -> None:
    """Whoever writes a revocation into the log (or the registry's own revocation) after a VALID
    check: the licence's entries changed, so the next check reads the log afresh."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.log.integrate()
    assert _log_check(env, licence.identifier)[1].status.value == "VALID"
    from cert_authority.issuing.log_leaves import licence_leaf

    row = _row(env, licence.identifier)
    revoked = licence_leaf(row, "revoke", dt.datetime.now(dt.timezone.utc), env.services.personal).encode()
    with env.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO log_entry (identifier, event, leaf, created_at) VALUES (:id, 'revoke', :leaf, :at)"),
            {"id": licence.identifier, "leaf": revoked, "at": dt.datetime.now(dt.timezone.utc)},
        )
    report, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_status_mismatch")
    assert report.result.value == "INVALID"


def test_a_remembered_log_check_names_the_newest_head(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    first = env.services.log.integrate()
    assert first is not None
    assert f"under head {first.label}" in _log_check(env, licence.identifier)[1].message
    issue_example(env, FOOD_TYPE)
    second = env.services.log.integrate()
    assert second is not None and second.tree_size == first.tree_size + 1
    _, check = _log_check(env, licence.identifier)
    assert check.status.value == "VALID" and f"under head {second.label}" in check.message


def test_a_leaf_edited_in_place_is_found_when_the_remembered_check_expires(licence_env: LicenceEnv) -> None:
    """A leaf edited in place, its record untouched, changes nothing a check reads with the row: the
    remembered VALID (the record is the one logged) stands until its lifetime ends, then the log is
    read afresh and the edit found."""
    from cert_authority.checking.verdicts import LIFETIME, Remembered

    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.log.integrate()
    clock = [0.0]
    env.services.verification._logged = Remembered(clock=lambda: clock[0])
    assert _log_check(env, licence.identifier)[1].status.value == "VALID"
    with env.engine.begin() as connection:
        leaf = bytes(
            connection.execute(
                text("SELECT leaf FROM log_entry WHERE identifier = :id"), {"id": licence.identifier}
            ).scalar_one()
        )
        connection.execute(
            text("UPDATE log_entry SET leaf = :leaf WHERE identifier = :id"),
            {"leaf": leaf[:-1] + bytes([leaf[-1] ^ 1]), "id": licence.identifier},
        )
    assert _log_check(env, licence.identifier)[1].status.value == "VALID"
    clock[0] += LIFETIME
    _, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_mismatch")


def test_a_record_edited_after_a_remembered_check_is_caught(licence_env: LicenceEnv) -> None:
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence
    env.services.log.integrate()
    assert _log_check(env, licence.identifier)[1].status.value == "VALID"
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE licence SET valid_until = NULL WHERE identifier = :id"), {"id": licence.identifier}
        )
    report, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_mismatch")
    assert report.result.value == "INVALID"


@pytest.mark.parametrize("column", ["identifier", "event"])
def test_a_log_check_is_remembered_only_for_the_state_it_read(licence_env: LicenceEnv, column: str) -> None:
    """The log's state is read with the row, the log again by the check: whoever changes the log
    between the two reads (here: hides the revocation of a licence un-revoked in the database,
    refiling its leaf under another identifier or event, then puts it back) must not get the
    check's answer remembered under the state read first."""
    env = licence_env
    licence = _un_revoked(env)
    log = env.services.log
    read_log = log.proofs_of

    revoke_entry = {"identifier": licence.identifier, "event": "revoke"}

    def relabel(value: str) -> None:
        with env.engine.begin() as connection:
            connection.execute(
                text(f"UPDATE log_entry SET {column} = :value WHERE event IN ('revoke', 'hidden')"),  # noqa: S608
                {"value": value},
            )

    def read_while_hidden(identifier: str):  # type: ignore[no-untyped-def]
        relabel("hidden")
        try:
            return read_log(identifier)
        finally:
            relabel(revoke_entry[column])

    log.proofs_of = read_while_hidden  # type: ignore[method-assign]
    try:
        _log_check(env, licence.identifier)  # what it says here is the log's own weakness, not ours
    finally:
        del log.proofs_of
    report, check = _log_check(env, licence.identifier)
    assert (check.status.value, check.reason) == ("INVALID", "log_status_mismatch")
    assert report.result.value == "INVALID"


def test_the_first_check_of_a_new_licence_is_remembered(licence_env: LicenceEnv) -> None:
    """The first check sequences the new licence's queued leaf (a new head) and is kept under
    what it read then: the next check reads that same state with the row, and the log not again."""
    env = licence_env
    licence = issue_example(env, FOOD_TYPE).licence  # its leaf queued, not yet sequenced
    log = env.services.log
    read_log, reads = log.proofs_of, []

    def counted(identifier: str):  # type: ignore[no-untyped-def]
        reads.append(identifier)
        return read_log(identifier)

    log.proofs_of = counted  # type: ignore[method-assign]
    try:
        assert _log_check(env, licence.identifier)[1].status.value == "VALID"
        assert len(reads) == 2  # before and after sequencing
        assert _log_check(env, licence.identifier)[1].status.value == "VALID"
        assert len(reads) == 2
    finally:
        del log.proofs_of

"""Privacy of log leaves (issue 22): a leaf of format 2 binds a salted commitment to the record's
SM3, so trying every ID number against a public leaf finds nothing; the salt, given with the proof,
opens the commitment against the digest sealed in the OFD; leaves of format 1 logged before still
verify (and still catch an edited record)."""

from __future__ import annotations

import base64
import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR
from cert_authority.demo import demo_citizen_id
from cert_authority.http.app import create_app
from cert_authority.issuing.binding import RECORD_SM3, record_digest
from cert_authority.issuing.log_leaves import licence_leaf
from cert_authority.store.models import LicenceRow
from cert_authority.store.packing import PackedFiles
from tests.cert_authority.store.test_personal_data import PERSON, _issue_person
from tests.cert_authority.transparency.test_log import _row
from tests.conftest import USER_USCC, LicenceEnv
from verification.ofd_file import inspect_ofd
from verification.report import Status
from verification.transparency import LogLeaf, record_commitment


def _leaf(env: LicenceEnv, identifier: str) -> bytes:
    with env.engine.connect() as connection:
        query = text("SELECT leaf FROM log_entry WHERE identifier = :i AND event = 'issue'")
        return bytes(connection.execute(query, {"i": identifier}).scalar_one())


def test_a_public_leaf_does_not_give_away_the_id_number(licence_env: LicenceEnv) -> None:
    """Attack: know every field of the record but the ID number (birth date and district too), try
    each candidate's record SM3 against the leaf. Format 1 gives the number away; format 2 not."""
    env = licence_env
    identifier = _issue_person(env)
    row = _row(env, identifier)
    leaf = LogLeaf.decode(_leaf(env, identifier))
    assert leaf.format == 2
    # The district and birth date known (or guessed): about a thousand sequence numbers remain.
    candidates = [demo_citizen_id(PERSON[:6], _birth(PERSON), n) for n in range(1, 240)]
    assert PERSON in candidates
    digests = {_digest_with(row, c): c for c in candidates}
    assert leaf.record_sm3 not in {bytes.fromhex(d) for d in digests}  # format 2: nothing to match
    old_style = licence_leaf(row, "issue", row.created_at, env.services.personal, format=1)
    assert digests[old_style.record_sm3.hex()] == PERSON  # format 1: found by trying 239 numbers
    salt = env.services.personal.record_salt(identifier)
    assert leaf.record_sm3 == record_commitment(salt, bytes.fromhex(record_digest(row)))


def _birth(code: str) -> dt.date:
    return dt.date(int(code[6:10]), int(code[10:12]), int(code[12:14]))


def _digest_with(row: LicenceRow, code: str) -> str:
    """The record's digest had the holder this ID number (it is in the face data too)."""
    return record_digest(row.model_copy(update={"holder_code": code, "face_json": row.face_json.replace(PERSON, code)}))


def test_the_proof_gives_the_salt_that_opens_the_commitment_with_the_sealed_ofd(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = _issue_person(env)
    app = create_app(env.settings)
    user = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    with TestClient(app) as client:
        proof = client.get(f"/api/v1/licences/{identifier}/proof", headers=user).json()
    leaf = LogLeaf.decode(base64.b64decode(proof["leaf"]))
    ofd = PackedFiles(env.registry.filestore, env.engine).get(_row(env, identifier).ofd_sm3)
    sealed = bytes.fromhex(inspect_ofd(ofd).custom_data[RECORD_SM3])  # what the holder's own file carries
    assert leaf.record_sm3 == record_commitment(base64.b64decode(proof["record_salt"]), sealed)
    assert proof["leaf_data"]["format"] == 2 and "record_sm3" not in proof["leaf_data"]


def test_leaves_of_format_1_still_verify_and_still_catch_an_edited_record(licence_env: LicenceEnv) -> None:
    env = licence_env
    identifier = _issue_person(env)
    row = _row(env, identifier)
    old = licence_leaf(row, "issue", row.created_at, env.services.personal, format=1).encode()
    with env.engine.begin() as connection:  # as logged before format 2 (not yet sequenced)
        connection.execute(text("UPDATE log_entry SET leaf = :l WHERE identifier = :i"), {"l": old, "i": identifier})
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert report.result is Status.VALID, report.to_dict()
    with env.engine.begin() as connection:
        connection.execute(
            text("UPDATE licence SET licence_number = 'EDITED-1' WHERE identifier = :i"), {"i": identifier}
        )
    report = env.services.verification.verify_identifier(CLI_ACTOR, identifier)
    assert report.result is Status.INVALID and "log_mismatch" in {c.reason for c in report.checks}

"""The HMAC-SM3 chain of audit rows, use records and status events (store/chain.py), on SQLite and
PostgreSQL, through every way rows are written (ORM sessions, one multi-row INSERT, PostgreSQL's one
statement per licence, the show-token check's one statement): a clean history verifies; an edited,
inserted, copied or deleted row, a cut-off tail and a status event moved to another licence are each
found and named."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from sqlalchemy import text

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.store.audit import audit_row, audit_values
from cert_authority.store.chain import anchor, verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring
from cert_authority.store.models import AuditEventRow
from tests.conftest import FOOD_TYPE, ISSUER_USCC, USER_USCC, LicenceEnv, example_data, issue_example

HOLDER_PASSWORD = "correct horse battery"
COUNTER = Actor(label="apikey:counter", role="user", department_uscc=USER_USCC)


def _history(env: LicenceEnv) -> list[str]:
    """Issue one licence, a batch of three, revoke one, show a licence and check the token twice
    (first use, then a replay), and check a token of the revoked one: every kind of write."""
    services = env.services
    one = issue_example(env, FOOD_TYPE).licence.identifier
    data = example_data(FOOD_TYPE)
    requests = [IssueRequest(data | {"premises": f"演示市鼓楼区五四路{n}号"}) for n in range(3)]
    outcomes = services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, issuer_uscc=ISSUER_USCC)
    batch = [outcome.result.licence.identifier for outcome in outcomes if outcome.result]
    assert len(batch) == 3
    holder_code = data["operator_code"]
    services.accounts.create(holder_code, data["operator_name"], HOLDER_PASSWORD)
    holder = services.accounts.holder(holder_code)
    token, _ = services.holders.show_token(holder, one)
    assert services.show_tokens.verify(COUNTER, token).reason == "ok"
    assert services.show_tokens.verify(COUNTER, token).reason == "replayed"
    revoked_token, _ = services.holders.show_token(holder, batch[0])
    services.lifecycle.revoke(CLI_ACTOR, batch[0], "测试吊销")
    assert services.show_tokens.verify(COUNTER, revoked_token).reason != "ok"
    return [one, *batch]


def _verify(env: LicenceEnv) -> dict[str, object]:
    keys = data_key_ring(env.settings).all_versions(RECORDS)
    with env.engine.connect() as connection:
        return verify_chains(connection, keys).as_dict()


def _tamper(env: LicenceEnv, statement: str, **parameters: object) -> None:
    with env.engine.begin() as connection:
        assert connection.execute(text(statement), parameters).rowcount == 1


def _row(env: LicenceEnv, where: str) -> dict[str, object]:
    with env.engine.connect() as connection:
        return dict(connection.execute(text(f"SELECT * FROM audit_event WHERE {where}")).mappings().one())  # noqa: S608


def _kinds(report: dict[str, object]) -> list[tuple[str, object, object]]:
    return [(p["kind"], p["table"], p["id"]) for p in report["problems"]]  # type: ignore[attr-defined,index]


def test_a_clean_history_verifies(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    report = _verify(licence_env)
    assert report["ok"], report["problems"]
    with licence_env.engine.connect() as connection:
        def count(query: str) -> int:
            return int(connection.execute(text(query)).scalar_one())

        chained = count("SELECT count(*) FROM audit_event WHERE chain_mac IS NOT NULL")
        events = count("SELECT count(*) FROM licence_event WHERE chain_mac IS NOT NULL")
        unchained = count("SELECT count(*) FROM audit_event WHERE chain_mac IS NULL")
    assert chained >= 9 and events >= 5 and unchained == 0  # 4 issues, 1 revoke, 2 shows, 3 checks…


def test_edited_row_is_found(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    target = _row(licence_env, "action = 'revoke'")
    edit = "UPDATE audit_event SET detail_json = :d WHERE id = :id"
    _tamper(licence_env, edit, d='{"reason": "正常"}', id=target["id"])
    assert _kinds(_verify(licence_env)) == [("edited", "audit_event", target["id"])]


def test_edited_status_event_is_found(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    with licence_env.engine.connect() as connection:
        event_id = connection.execute(text("SELECT id FROM licence_event WHERE action = 'revoke'")).scalar_one()
    _tamper(licence_env, "UPDATE licence_event SET reason = NULL WHERE id = :id", id=event_id)
    assert _kinds(_verify(licence_env)) == [("edited", "licence_event", event_id)]


def test_status_event_moved_to_another_licence_is_found(licence_env: LicenceEnv) -> None:
    identifiers = _history(licence_env)
    with licence_env.engine.connect() as connection:
        event_id = connection.execute(text("SELECT id FROM licence_event WHERE action = 'revoke'")).scalar_one()
        query = text("SELECT id FROM licence WHERE identifier = :i")
        other = connection.execute(query, {"i": identifiers[0]}).scalar_one()
    _tamper(licence_env, "UPDATE licence_event SET licence_id = :l WHERE id = :id", l=other, id=event_id)
    assert _kinds(_verify(licence_env)) == [("edited", "licence_event", event_id)]


def test_deleted_row_is_found(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    victim = _row(licence_env, "action = 'show_token' ORDER BY id LIMIT 1")
    _tamper(licence_env, "DELETE FROM audit_event WHERE id = :id", id=victim["id"])
    report = _verify(licence_env)
    assert [(p["kind"], p["partition"], p["seq"]) for p in report["problems"]] == [  # type: ignore[attr-defined]
        ("deleted", victim["chain_partition"], victim["chain_seq"])
    ]


def test_inserted_rows_are_found(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    genuine = _row(licence_env, "action = 'revoke'")
    columns = [c for c in genuine if c != "id"]
    names, values = ", ".join(columns), ", ".join(":" + c for c in columns)
    insert = f"INSERT INTO audit_event ({names}) VALUES ({values})"  # noqa: S608 - the table's own column names
    with licence_env.engine.begin() as connection:
        # A forged row: a plausible MAC, made without the key.
        seq = genuine["chain_seq"] + 100  # type: ignore[operator]
        forged = genuine | {"target": "1.2.156.3005.2.FORGED", "chain_seq": seq, "chain_mac": "ab" * 32}
        connection.execute(text(insert), forged)
        # A row without chain columns, written after the chain began.
        unchained = dict.fromkeys(("chain_partition", "chain_seq", "chain_prev", "chain_mac"))
        connection.execute(text(insert), genuine | unchained)
        # An exact copy of a genuine row (MAC and all).
        connection.execute(text(insert), genuine)
        ids = connection.execute(text("SELECT id FROM audit_event ORDER BY id DESC LIMIT 3")).scalars().all()
    kinds = sorted(_kinds(_verify(licence_env)), key=lambda k: k[2])  # type: ignore[arg-type,return-value]
    assert kinds == [("inserted", "audit_event", i) for i in sorted(ids)]


def test_cut_off_tail_is_found_by_the_anchor(licence_env: LicenceEnv) -> None:
    _history(licence_env)
    with licence_env.engine.begin() as connection:
        run = anchor(connection, dt.datetime.now(dt.timezone.utc))
    assert run.heads and len(run.digest) == 64
    with licence_env.engine.begin() as connection:  # nothing moved: nothing new to anchor
        assert anchor(connection, dt.datetime.now(dt.timezone.utc)).heads == ()
    partition, seq, _mac = run.heads[0]
    with licence_env.engine.begin() as connection:
        removed = sum(
            connection.execute(
                text(f"DELETE FROM {table} WHERE chain_partition = :p AND chain_seq = :s"), {"p": partition, "s": seq}  # noqa: S608
            ).rowcount
            for table in ("audit_event", "licence_event")
        )
    assert removed == 1
    report = _verify(licence_env)
    assert [(p["kind"], p["partition"], p["seq"]) for p in report["problems"]] == [("truncated", partition, seq)]  # type: ignore[attr-defined]


def test_concurrent_writers_use_their_own_partitions(licence_env: LicenceEnv) -> None:
    """Eight threads revoking and showing at once: every row chained, all chains whole."""
    identifiers = [issue_example(licence_env, FOOD_TYPE).licence.identifier for _ in range(8)]
    errors: list[BaseException] = []

    def revoke(identifier: str) -> Callable[[], None]:
        def run() -> None:
            try:
                licence_env.services.lifecycle.revoke(CLI_ACTOR, identifier, "并发测试")
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=revoke(identifier)) for identifier in identifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = _verify(licence_env)
    assert report["ok"], report["problems"]
    assert report["partitions"] >= 1


def test_rotated_key_old_rows_still_verify(licence_env: LicenceEnv) -> None:
    issue_example(licence_env, FOOD_TYPE)
    data_key_ring(licence_env.settings).rotate(RECORDS)
    # The running pool keeps its partitions; a new engine's partitions use version 2.
    from templates.fonts import FontSet
    from tests.conftest import open_licence_env

    other = open_licence_env(licence_env.settings, FontSet.default())
    try:
        issue_example(other, FOOD_TYPE)
    finally:
        other.engine.dispose()
    report = _verify(licence_env)
    assert report["ok"] and report["partitions"] >= 2, report



def test_migration_0012_down_and_up_keeps_old_rows_unchained(database_url: str) -> None:
    """Rows from before the chain stay readable and count as `unchained_before`, not as tampering."""
    from alembic import command
    from alembic.config import Config

    from cert_authority.store.db import MIGRATIONS, create_db_engine, migrate

    engine = create_db_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0011_matters_cases")
        connection.execute(
            text("INSERT INTO audit_event (at, actor, actor_role, action, target) "
                 "VALUES (:at, 'cli', 'admin', 'x', 't')"),
            {"at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},
        )
    migrate(engine)
    with engine.connect() as connection:
        report = verify_chains(connection, [])
    assert report.ok and report.unchained_before == 1
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011_matters_cases")
    migrate(engine)
    engine.dispose()


def test_core_audit_values_are_the_audit_rows_columns() -> None:
    """The show-token check writes audit rows from `audit_values` without the ORM: every column
    but the id, as the model would have them, so a column added later cannot be left out."""
    at = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
    arguments = (CLI_ACTOR, "show_verify", "target", at)
    options = {"holder_code": "350102199001011234", "detail": {"result": "VALID"}}
    values = audit_values(*arguments, **options)
    assert values == audit_row(*arguments, **options).model_dump(exclude={"id"})
    assert set(values) == {c.name for c in AuditEventRow.__table__.columns} - {"id"}  # type: ignore[attr-defined]

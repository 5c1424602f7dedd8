"""Audit-chain anchors in the transparency log (issue 25 item 3): each `ecas audit anchor` run is a
leaf (format 3) under a signed head, and `ecas audit verify` checks the anchors kept in the
database against it. The attacks: an edited anchor; a chain cut off after its anchor, the anchor
deleted (or moved to the new end) to hide it; a deleted or edited anchor leaf."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from cert_authority.store.chain import verify_chains
from cert_authority.store.data_keys import RECORDS, data_key_ring
from cert_authority.transparency.anchors import AnchorCheck, anchor_and_log, check_anchors
from tests.conftest import FOOD_TYPE, LicenceEnv, issue_example
from tests.verification import rfc9162_verifier as rfc
from verification.transparency import AnchorLeaf, decode_leaf


def _anchor(env: LicenceEnv) -> None:
    with env.engine.begin() as connection:
        run = anchor_and_log(connection, dt.datetime.now(dt.timezone.utc))
    assert run.heads
    env.services.log.integrate()


def _check(env: LicenceEnv) -> AnchorCheck:
    with env.engine.connect() as connection:
        return check_anchors(env.services.log, connection, dt.datetime.now(dt.timezone.utc))


def _kinds(check: AnchorCheck) -> list[str]:
    return sorted(problem.kind for problem in check.problems)


def _chain_problems(env: LicenceEnv) -> list[str]:
    keys = data_key_ring(env.settings).all_versions(RECORDS)
    with env.engine.connect() as connection:
        return [problem.kind for problem in verify_chains(connection, keys).problems]


def _sql(env: LicenceEnv, statement: str, **parameters: object) -> int:
    with env.engine.begin() as connection:
        return int(connection.execute(text(statement), parameters).rowcount)


def test_an_anchor_is_a_leaf_under_a_signed_head(licence_env: LicenceEnv) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    check = _check(env)
    assert (check.runs, check.logged, check.unlogged_before, check.problems) == (2, 2, 0, ())
    with env.engine.connect() as connection:
        leaves = [bytes(leaf) for (leaf,) in connection.execute(text("SELECT leaf FROM log_entry ORDER BY leaf_index"))]
    anchors = [decode_leaf(leaf) for leaf in leaves if leaf[0] == 3]
    assert len(anchors) == 2 and all(isinstance(leaf, AnchorLeaf) and leaf.heads >= 1 for leaf in anchors)
    head = env.services.log.latest_head()
    assert head is not None and head.root_hash == rfc.mth(rfc.sm3, leaves)  # the separate RFC verifier's root


def test_an_edited_anchor_is_caught(licence_env: LicenceEnv) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    assert _sql(env, "UPDATE chain_anchor SET chain_seq = chain_seq - 1 WHERE id = (SELECT max(id) FROM chain_anchor)")
    assert _kinds(_check(env)) == ["anchor_edited"]


def test_a_chain_cut_off_after_its_anchor_is_caught_when_the_anchor_is_deleted(licence_env: LicenceEnv) -> None:
    """Without the log, deleting the anchor with the tail hides the cut: the chain alone is fine."""
    env = licence_env
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    with env.engine.connect() as connection:
        partition, seq = connection.execute(text("SELECT chain_partition, chain_seq FROM chain_anchor")).first()  # type: ignore[misc]
    removed = sum(
        _sql(env, f"DELETE FROM {table} WHERE chain_partition = :p AND chain_seq = :s", p=partition, s=seq)  # noqa: S608
        for table in ("audit_event", "licence_event")
    )
    assert removed == 1
    assert _chain_problems(env) == ["truncated"]  # the anchor in the database still sees it
    _sql(env, "DELETE FROM chain_anchor")  # the whole run (one partition's row alone: anchor_edited)
    assert _chain_problems(env) == []  # ...until it is deleted too
    assert _kinds(_check(env)) == ["anchor_deleted"]  # the log still has it


def test_a_chain_cut_off_and_its_anchor_moved_to_the_new_end_is_caught(licence_env: LicenceEnv) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    with env.engine.connect() as connection:
        partition, seq = connection.execute(text("SELECT chain_partition, chain_seq FROM chain_anchor")).first()  # type: ignore[misc]
        previous = connection.execute(
            text(
                "SELECT chain_mac FROM audit_event WHERE chain_partition = :p AND chain_seq = :s"
                " UNION ALL SELECT chain_mac FROM licence_event WHERE chain_partition = :p AND chain_seq = :s"
            ),
            {"p": partition, "s": seq - 1},
        ).scalar_one()
    for table in ("audit_event", "licence_event"):
        _sql(env, f"DELETE FROM {table} WHERE chain_partition = :p AND chain_seq = :s", p=partition, s=seq)  # noqa: S608
    _sql(
        env,
        "UPDATE chain_anchor SET chain_seq = :s, chain_mac = :m WHERE chain_partition = :p",
        p=partition,
        s=seq - 1,
        m=previous,
    )
    assert _chain_problems(env) == []  # consistent in the database
    assert _kinds(_check(env)) == ["anchor_edited"]


def test_an_anchor_leaf_edited_or_deleted_in_the_log_is_caught(licence_env: LicenceEnv) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    with env.engine.connect() as connection:
        leaf = bytes(connection.execute(text("SELECT leaf FROM log_entry WHERE event = 'anchor'")).scalar_one())
    # Edited to agree with an edited anchor: its inclusion proof no longer holds.
    _sql(env, "UPDATE chain_anchor SET chain_seq = chain_seq - 1")
    with env.engine.connect() as connection:
        from cert_authority.transparency.anchors import _runs, anchor_leaf

        (run,) = _runs(connection).values()
    forged = anchor_leaf(run).encode()
    assert forged != leaf
    _sql(env, "UPDATE log_entry SET leaf = :leaf WHERE event = 'anchor'", leaf=forged)
    assert _kinds(_check(env)) == ["anchor_proof_failed"]
    # Deleted with the anchor: the head names more leaves than the database has.
    _sql(env, "DELETE FROM log_entry WHERE event = 'anchor'")
    _sql(env, "DELETE FROM chain_anchor")
    issue_example(env, FOOD_TYPE)
    _anchor(env)  # a new run, logged: the log is checked again
    assert "anchor_proof_failed" in _kinds(_check(env))


def test_anchors_made_before_they_were_logged_are_counted_apart(licence_env: LicenceEnv) -> None:
    env = licence_env
    issue_example(env, FOOD_TYPE)
    from cert_authority.store.chain import anchor

    with env.engine.begin() as connection:  # as `ecas audit anchor` did before anchors went to the log
        anchor(connection, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    issue_example(env, FOOD_TYPE)
    _anchor(env)
    check = _check(env)
    assert (check.runs, check.logged, check.unlogged_before, check.problems) == (2, 1, 1, ())

"""Appends from many workers at once, sequenced by several sequencers at once (SQLite and
PostgreSQL): every leaf gets exactly one index, the indices have no gap, every head signs the
root of exactly the leaves below its size, and each head is consistent with the next. Tile paths
as C2SP tlog-tiles spells them."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import text

from cert_authority.bench.log import bench_leaf
from cert_authority.pki.service import PkiService
from cert_authority.transparency.log import TransparencyLog, queue_leaves
from cert_authority.transparency.tiles import TileError, encode_index, parse_tile_path, tile_path
from tests.conftest import LicenceEnv
from tests.verification import rfc9162_verifier as rfc


def test_concurrent_appends_and_sequencers_give_one_gapless_order(licence_env: LicenceEnv) -> None:
    env = licence_env
    env.pki.service_signer(dt.datetime.now(dt.timezone.utc))
    # Two "workers" sequencing at once, each with its own TransparencyLog (as two processes would).
    logs = [env.services.log, TransparencyLog(env.engine, PkiService(env.settings, env.engine, env.pki.keystore))]
    writers, per_writer, chunk = 4, 150, 10
    errors: list[BaseException] = []
    done = threading.Event()

    def write(first: int) -> None:
        try:
            for start in range(first, first + per_writer, chunk):
                with env.engine.begin() as connection:
                    queue_leaves(
                        connection,
                        [bench_leaf(n) for n in range(start, start + chunk)],
                        dt.datetime.now(dt.timezone.utc),
                    )
        except BaseException as exc:
            errors.append(exc)

    def sequence(log: TransparencyLog) -> None:
        try:
            while not done.is_set():
                log.integrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n * 10_000,)) for n in range(writers)]
    sequencers = [threading.Thread(target=sequence, args=(log,)) for log in logs]
    for thread in threads + sequencers:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    for thread in sequencers:
        thread.join()
    assert not errors, errors
    logs[0].integrate()

    total = writers * per_writer
    with env.engine.connect() as connection:
        rows = connection.execute(text("SELECT leaf_index, leaf FROM log_entry ORDER BY leaf_index")).all()
        sizes = [size for (size,) in connection.execute(text("SELECT tree_size FROM log_head ORDER BY tree_size"))]
    assert [index for index, _ in rows] == list(range(total))
    leaves = [bytes(leaf) for _, leaf in rows]
    assert len(set(leaves)) == total  # each queued leaf exactly once
    assert sizes[-1] == total and len(sizes) >= 2
    log = logs[0]
    heads = [log.head_at(size) for size in sizes]
    certificate = env.pki.service_signer(dt.datetime.now(dt.timezone.utc)).certificate_chain[0]
    for head in heads:
        assert head is not None and head.verify(certificate)
        assert head.root_hash == rfc.mth(rfc.sm3, leaves[: head.tree_size])
    for old, new in itertools.pairwise(heads):
        assert old is not None and new is not None
        proof = log.consistency(old.tree_size, new.tree_size)
        assert rfc.consistency_holds(rfc.sm3, old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)


@pytest.mark.parametrize(
    ("index", "text"), [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")]
)
def test_tile_index_encoding(index: int, text: str) -> None:
    assert encode_index(index) == text
    assert parse_tile_path(f"0/{text}") == ("0", index, 256)
    assert tile_path(2, index, 17) == f"tile/2/{text}.p/17"
    assert tile_path("entries", index, 256) == f"tile/entries/{text}"


@pytest.mark.parametrize(
    "path", ["0/1", "0/0000", "0/x000/001", "0/001.p/0", "0/001.p/256", "0/001.p/07", "a/001", "64/001", "0/001/"]
)
def test_bad_tile_paths(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)

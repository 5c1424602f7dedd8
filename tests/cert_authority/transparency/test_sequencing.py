"""Appends from many workers at once, sequenced by several sequencers at once (SQLite and
PostgreSQL): every leaf gets exactly one index, the indices have no gap, every head signs the
root of exactly the leaves below its size, and each head is consistent with the next. Tile paths
as C2SP tlog-tiles spells them."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import threading
from pathlib import Path

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

    # A first head before the race, so there are always two to prove consistent between (the
    # sequencers may otherwise take every concurrent leaf in one batch: seen under CI load).
    with env.engine.begin() as connection:
        first = [bench_leaf(n) for n in range(writers * 10_000, writers * 10_000 + chunk)]
        queue_leaves(connection, first, dt.datetime.now(dt.timezone.utc))
    logs[0].integrate()
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

    total = writers * per_writer + chunk
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
    "path",
    ["0/1", "0/0000", "0/x000/001", "0/001.p/0", "0/001.p/256", "0/001.p/07", "a/001", "64/001", "0/001/", "01/001"],
)
def test_bad_tile_paths(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_static_tiles_prove_without_the_database(licence_env: LicenceEnv, tmp_path: Path) -> None:
    """`ecas log export-tiles`: the files alone (as a CDN would serve them) give the checkpoint's
    root and any leaf's proof; exporting again after growth adds files and replaces the checkpoint."""
    from cert_authority.transparency.log import export_tiles
    from cert_authority.transparency.tiles import TileCache, TileNodes
    from verification.merkle import SM3_TREE, inclusion_proof

    env = licence_env
    log = env.services.log
    now = dt.datetime.now(dt.timezone.utc)
    with env.engine.begin() as connection:
        queue_leaves(connection, [bench_leaf(n) for n in range(600)], now)
    log.integrate()
    out = tmp_path / "static"
    head = export_tiles(log, out)
    assert head is not None
    body, _ = (out / "checkpoint").read_text().split("\n\n")
    origin, size, root, _time = body.split("\n")
    assert int(size) == 600 and base64.b64decode(root) == head.root_hash and origin == head.origin

    def load(level: int, index: int) -> bytes:
        width = min(256, (600 >> (8 * level)) - index * 256)
        return (out / tile_path(level, index, width)).read_bytes()

    leaves: list[bytes] = []
    for name in ("000", "001", "002.p/88"):
        data = (out / f"tile/entries/{name}").read_bytes()
        while data:
            length = int.from_bytes(data[:2], "big")
            leaves.append(data[2 : 2 + length])
            data = data[2 + length :]
    assert rfc.mth(rfc.sm3, leaves) == head.root_hash
    nodes = TileNodes(TileCache(SM3_TREE), 600, load)
    for index in (0, 255, 256, 511, 599):
        proof = inclusion_proof(SM3_TREE, nodes, index, 600)
        assert rfc.inclusion_holds(rfc.sm3, index, 600, leaves[index], proof, head.root_hash)

    first_tile = (out / "tile/0/000").stat().st_mtime_ns
    with env.engine.begin() as connection:
        queue_leaves(connection, [bench_leaf(n) for n in range(600, 700)], now)
    log.integrate()
    grown = export_tiles(log, out)
    assert grown is not None and grown.tree_size == 700
    assert (out / "tile/0/002.p/188").exists() and (out / "tile/0/002.p/88").exists()
    assert (out / "tile/0/000").stat().st_mtime_ns == first_tile
    assert f"\n{700}\n" in (out / "checkpoint").read_text()

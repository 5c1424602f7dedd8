"""`ecas bench log`: the transparency log's append and proof rates (targets: 5,000 leaves/s appended,
2,000 proofs/s served, on 2 cores).

On a fresh authority (a temporary data directory, a schema of its own on PostgreSQL by default):

- append: `workers` processes queue leaves as issuance does, in transactions of 50 (a batch chunk;
  `chunk` to change it: in issuance the leaves ride in transactions that commit anyway),
  while this process sequences them (`TransparencyLog.integrate`) as the server's timer would;
  the rate is leaves queued *and* sequenced under a signed head, per second of wall time;
- proofs: `workers` processes each build what `GET /api/v1/licences/{id}/proof` returns (the
  licence's leaves, the latest head, inclusion proofs from the tiles) for random licences;
  a sample is checked with `verification.merkle.verify_inclusion`.

Baselines measured in the same run (the machines are shared and noisy): SM3 hashes per second
in one process, and database round trips per second (`SELECT 1`) on one connection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import text

from cert_authority.bench.serve import bench_database
from cert_authority.demo import ensure_demo_kek
from cert_authority.pki.service import PkiService
from cert_authority.services import migrated_engine
from cert_authority.settings import Settings, load_settings
from cert_authority.store.db import create_db_engine
from cert_authority.transparency.log import TransparencyLog, licence_proofs, queue_leaves
from verification.merkle import verify_inclusion
from verification.transparency import LogLeaf

TARGET_APPEND_PER_S = 5000
TARGET_PROOFS_PER_S = 2000
CHUNK = 50  # leaves per transaction, as a batch chunk of issue-batch commits them


def bench_leaf(n: int) -> LogLeaf:
    """A leaf the size of a real one: identifier, two file digests, a record digest."""
    digest = hashlib.new("sm3", n.to_bytes(8, "big")).digest()
    identifier = f"1.2.156.3005.2.11100000MA0000001Q001.11350100MB00000100.{n:010d}.001.X"
    now = dt.datetime.now(dt.timezone.utc)
    return LogLeaf(identifier, 1, "issue", now, (("pdf", digest), ("ofd", digest)), digest)


def _append_worker(settings: Settings, first: int, count: int, chunk: int = CHUNK) -> tuple[float, float]:
    engine = create_db_engine(settings.effective_database_url)
    started = time.time()
    for start in range(first, first + count, chunk):
        leaves = [bench_leaf(n) for n in range(start, min(start + chunk, first + count))]
        with engine.begin() as connection:
            queue_leaves(connection, leaves, dt.datetime.now(dt.timezone.utc))
    engine.dispose()
    return started, time.time()


def _proof_worker(settings: Settings, leaves: int, seconds: float, seed: int) -> tuple[int, int]:
    engine = create_db_engine(settings.effective_database_url)
    log = TransparencyLog(engine, PkiService(settings, engine))
    chooser = random.Random(seed)  # noqa: S311 (choosing leaves, not secrets)
    done = checked = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        proofs = licence_proofs(log, bench_leaf(chooser.randrange(leaves)).identifier)
        assert proofs, "a queued leaf has no proof"
        done += 1
        if done % 97 == 1:  # a sample (the first, then every 97th), checked as a verifier would
            _, proof = proofs[0]
            leaf_hash = log.hasher.leaf(proof.leaf)
            ok = verify_inclusion(
                log.hasher, proof.leaf_index, proof.head.tree_size, leaf_hash, proof.hashes, proof.head.root_hash
            )
            assert ok, "a proof did not verify"
            checked += 1
    engine.dispose()
    return done, checked


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _sm3_per_s(seconds: float = 0.5) -> float:
    data, count, deadline = b"x" * 100, 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            hashlib.new("sm3", data).digest()
        count += 1000
    return _rate(count, seconds)


def _round_trips_per_s(settings: Settings, seconds: float = 0.5) -> float:
    engine = create_db_engine(settings.effective_database_url)
    count, started = 0, time.perf_counter()
    with engine.connect() as connection:
        while time.perf_counter() - started < seconds:
            connection.execute(text("SELECT 1"))
            count += 1
    engine.dispose()
    return _rate(count, time.perf_counter() - started)


def log_benchmark(
    leaves: int,
    workers: int,
    proof_seconds: float,
    database_url: str,
    data_dir: Path | None = None,
    chunk: int = CHUNK,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ecas-bench-log-") as scratch, bench_database(database_url) as url:
        settings = load_settings(data_dir=data_dir or Path(scratch), database_url=url, log_interval_seconds=0)
        ensure_demo_kek(settings)
        engine = migrated_engine(settings)
        pki = PkiService(settings, engine)
        if not pki.initialised:
            pki.init(dt.datetime.now(dt.timezone.utc))
        log = TransparencyLog(engine, pki)
        pki.service_signer(dt.datetime.now(dt.timezone.utc))  # made on first use: not part of the figures
        result: dict[str, Any] = {
            "database": engine.dialect.name,
            "workers": workers,
            "leaves_per_transaction": chunk,
            "baseline_sm3_per_s": _sm3_per_s(),
            "baseline_db_round_trips_per_s": _round_trips_per_s(settings),
        }
        context = multiprocessing.get_context("spawn")
        share = -(-leaves // workers)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            pool.submit(_append_worker, settings, 10**9, 0).result()  # start the processes first
            futures = [
                pool.submit(_append_worker, settings, n * share, min(share, leaves - n * share), chunk)
                for n in range(workers)
            ]
            sequenced, sequencing = 0, 0.0
            while sequenced < leaves:
                started = time.perf_counter()
                head = log.integrate()
                if head is None:
                    time.sleep(0.05)
                    continue
                sequencing += time.perf_counter() - started
                sequenced = head.tree_size
            finished = time.time()
            spans = [future.result() for future in futures]
            elapsed = finished - min(start for start, _ in spans)
            queued = max(end for _, end in spans) - min(start for start, _ in spans)
            result |= {
                "leaves": leaves,
                "append_leaves_per_s": _rate(leaves, elapsed),
                "queue_leaves_per_s": _rate(leaves, queued),
                "sequence_leaves_per_s": _rate(leaves, sequencing),
                "heads_signed": len(log.heads(limit=1_000_000)),
            }
            runs = [pool.submit(_proof_worker, settings, leaves, proof_seconds, seed) for seed in range(workers)]
            counted = [run.result() for run in runs]
        result |= {
            "proofs": sum(done for done, _ in counted),
            "proofs_per_s": _rate(sum(done for done, _ in counted), proof_seconds),
            "proofs_checked": sum(checked for _, checked in counted),
            "target_append_per_s": TARGET_APPEND_PER_S,
            "target_proofs_per_s": TARGET_PROOFS_PER_S,
            "cpus": os.cpu_count(),
        }
        engine.dispose()
        return result

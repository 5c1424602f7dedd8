"""`ecas bench issue`: sealed licences per second, end to end, beside `openssl speed sm2`.

On its own data directory (a new temporary one unless given) it sets up what issuing needs: the CA,
the demo departments, the example licence types and a seal per department. Then it issues `count`
licences of the food business licence type (食品经营许可证) through the batch pipeline with one
worker process per core (layout, PDF and OFD sealed with SM2, files stored and synced, records
committed), after a warm-up that loads keys and templates. The baseline, OpenSSL's single-core SM2
sign rate, is measured in the same run: the machines are shared and noisy, so only same-run ratios
mean much. Each licence makes two SM2 signatures (PDF and OFD), and two more by the TSA for the
timestamps over them. What the timestamps cost is measured in the same run too: a second pool of
workers issues with ECAS_TSA_STAMP_SEALS off, the two pools taking turns on slices of the rows
(`ROUNDS`), so both see the same machine. The TSA's clock is taken as is (ECAS_TSA_CLOCK=unchecked:
development machines often have no NTP; the kernel check is one system call per chunk).
"""

from __future__ import annotations

import cProfile
import csv
import io
import os
import pstats
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from cert_authority.actors import CLI_ACTOR
from cert_authority.bench.crypto import measure_openssl
from cert_authority.demo import (
    DEPARTMENTS,
    FOOD_TYPE,
    demo_licences,
    demo_uscc,
    ensure_demo_kek,
    register_departments,
    register_example_types,
    register_seals,
)
from cert_authority.issuing.batch import BatchPool, BatchRow, BatchSummary, RowResult, issue_rows, read_rows
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import registry_for
from cert_authority.services import LicenceServices, issuance_service, licence_services_for, migrated_engine
from cert_authority.settings import Settings, load_settings
from cert_authority.store.models import LicenceRow
from cert_authority.timeutil import utc_now

TARGET_PER_S = 500  # issue 24, 2 workers
TARGET_RATIO = 0.16  # of `openssl speed sm2`'s one-core sign rate in the same run
SINGLE_SAMPLES = 20
ROUNDS = 3  # turns each pool takes (with and without timestamps)
TARGET_STORED_BYTES = 20 * 1024  # issue 24: at most 20 KB stored per licence
STORAGE_SAMPLE = 300  # licences whose stored size and download time are measured
DOWNLOAD_ROUNDS = 2


def prepare(settings: Settings) -> LicenceServices:
    """The CA, departments, example types and seals on `settings` (idempotent)."""
    ensure_demo_kek(settings)
    engine = migrated_engine(settings)
    pki = PkiService(settings, engine)
    now = utc_now()
    if not pki.initialised:
        pki.init(now)
    registry = registry_for(settings, engine)
    services = licence_services_for(pki, registry)
    register_departments(registry)
    register_example_types(registry)
    register_seals(services, now)
    return services


def write_rows(path: Path, count: int) -> None:
    """`count` food business licences for different companies; a run tag keeps every row new, so
    a data directory can be reused without the rows being skipped as already issued."""
    base = next(d for d in demo_licences() if d.type_code == FOOD_TYPE).data
    tag = uuid.uuid4().hex[:8]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(base))
        writer.writeheader()
        for i in range(count):
            writer.writerow(
                {
                    **base,
                    "operator_name": f"演示市第{i + 1}号餐饮有限公司",
                    "operator_code": demo_uscc("350100", 10_000 + i % 80_000),
                    "premises": f"演示市鼓楼区五四路{100 + i % 900}号（{tag}）",
                }
            )


def issue_benchmark(
    count: int,
    workers: int | None = None,
    data_dir: Path | None = None,
    database_url: str | None = None,
    openssl_seconds: float = 3.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Issue `count` licences with timestamps and `count` without, and return the figures (see the
    module docstring)."""
    workers = workers or os.cpu_count() or 1
    scratch = data_dir is None
    directory = data_dir or Path(tempfile.mkdtemp(prefix="ecas-bench-"))
    try:
        settings = load_settings(data_dir=directory, database_url=database_url, tsa_clock="unchecked")
        services = prepare(settings)
        issuer = DEPARTMENTS[0].uscc
        single_ms = _single_issue_ms(services, directory)
        openssl_sign, _ = measure_openssl(openssl_seconds)  # before the workers start: an idle machine
        plain_settings = settings.model_copy(update={"tsa_stamp_seals": False})
        summaries = {"stamped": BatchSummary(), "plain": BatchSummary()}

        def recorder(summary: BatchSummary) -> Callable[[RowResult], None]:
            def record(result: RowResult) -> None:
                summary.add(result)
                if progress is not None:
                    progress(1)

            return record

        with (
            BatchPool(issuance_service, settings, FOOD_TYPE, issuer, directory, workers) as stamped,
            BatchPool(issuance_service, plain_settings, FOOD_TYPE, issuer, directory, workers) as plain,
        ):
            stamped.warm_up()
            plain.warm_up()
            for turn in range(ROUNDS):
                share = count // ROUNDS + (1 if turn < count % ROUNDS else 0)
                for name, pool in (("plain", plain), ("stamped", stamped)):
                    rows = directory / f"bench-rows-{name}-{turn}.csv"
                    write_rows(rows, share)
                    started = time.perf_counter()
                    pool.run(rows, recorder(summaries[name]))
                    summaries[name].seconds += time.perf_counter() - started
        storage = storage_figures(services)
    finally:
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    summary, without = summaries["stamped"], summaries["plain"]
    for measured in (summary, without):
        if measured.issued != count:
            raise RuntimeError(f"基准测试只颁发了 {measured.issued}/{count} 份（拒绝 {measured.rejected} 行）")
    rate = summary.issued / summary.seconds
    rate_without = without.issued / without.seconds
    return {
        "licences_per_s": round(rate, 1),
        "licences_per_s_without_timestamps": round(rate_without, 1),
        "timestamp_cost_percent": round((1 - rate / rate_without) * 100, 1),
        "openssl_sign_per_s": openssl_sign,
        "ratio": round(rate / openssl_sign, 3),
        "target_licences_per_s": TARGET_PER_S,
        "target_ratio": TARGET_RATIO,
        "licences": summary.issued,
        "seconds": round(summary.seconds, 2),
        "workers": workers,
        "ms_per_licence_per_worker": round(summary.seconds * workers / summary.issued * 1000, 2),
        "single_issue_ms": single_ms,
        "database": settings.effective_database_url.split(":", 1)[0],
        "signatures_per_licence": 2,
        "tsa_signatures_per_licence": 2,
        **storage,
    }


def storage_figures(services: LicenceServices, sample: int = STORAGE_SAMPLE) -> dict[str, Any]:
    """What the licences of this run take in the file store, and what reading one back costs.

    - stored_bytes_per_licence: bytes a licence adds to the file store (its PDF and OFD manifests,
      `store.packing`), mean over up to `sample` licences of the run; target ≤ 20 KB.
    - unpacked_bytes_per_licence: the same files whole, as stored before packing (the "before").
    - shared_bytes: the constants those licences refer to, stored once for all of them (PDF
      constant starts, background JPEG, seals, certificates, OCSP responses, the two font files).
    - download_ms_p50 / _p99: one sealed file (PDF and OFD taking turns) read back from the store
      as downloads read it: put back together from its manifest and checked against its SM3
      (warm process: constants and font subsetters already loaded).
    - download_unpacked_ms_p50 / _p99: the same files stored whole, read and checked the way they
      were before packing; measured interleaved with the above, in the same process.
    """
    packed = services.issuance.packed
    with Session(services.issuance.engine) as session:
        rows = session.exec(
            select(LicenceRow.pdf_sm3, LicenceRow.ofd_sm3).order_by(col(LicenceRow.id).desc()).limit(sample)
        ).all()
    names = [name for row in rows for name in row]
    stored = sum(packed.stored_size(name) for name in names)
    shared = set().union(*(packed.shared_parts(name) for name in names))
    whole = {name: packed.get(name) for name in names}
    plain = packed.store  # the same bytes stored whole, under the same names: main's layout
    plain.put_many([(data, bytes.fromhex(name)) for name, data in whole.items()])
    packed_times, plain_times = [], []
    for _ in range(DOWNLOAD_ROUNDS):
        for name in names:
            started = time.perf_counter()
            packed.get(name)
            packed_times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            plain.get(name)
            plain_times.append((time.perf_counter() - started) * 1000)
    return {
        "stored_bytes_per_licence": round(stored / len(rows)),
        "target_stored_bytes_per_licence": TARGET_STORED_BYTES,
        "unpacked_bytes_per_licence": round(sum(map(len, whole.values())) / len(rows)),
        "shared_bytes": sum(len(packed.store.get(name)) for name in shared),
        "storage_sample_licences": len(rows),
        "download_ms_p50": _percentile(packed_times, 50),
        "download_ms_p99": _percentile(packed_times, 99),
        "download_unpacked_ms_p50": _percentile(plain_times, 50),
        "download_unpacked_ms_p99": _percentile(plain_times, 99),
    }


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, len(ordered) * percent // 100)], 2)


def _single_issue_ms(services: LicenceServices, directory: Path) -> float:
    """Median time of one licence through `issue_licence` (the API's path) in this process."""
    path = directory / "bench-single.csv"
    write_rows(path, SINGLE_SAMPLES + 1)
    data = [row.values for row in read_rows(path) if isinstance(row, BatchRow)]
    times = []
    for values in data:
        started = time.perf_counter()
        services.issuance.issue_licence(CLI_ACTOR, FOOD_TYPE, values, issuer_uscc=DEPARTMENTS[0].uscc)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times[1:]), 2)  # the first loads keys and templates


def profile_issue(count: int, top: int = 25) -> str:
    """Where the time goes: `count` licences issued in this process under cProfile, on a
    temporary data directory; the `top` functions by own time."""
    directory = Path(tempfile.mkdtemp(prefix="ecas-profile-"))
    try:
        services = prepare(load_settings(data_dir=directory))
        path = directory / "rows.csv"
        write_rows(path, count + 10)
        rows = [row for row in read_rows(path) if isinstance(row, BatchRow)]
        issuer = DEPARTMENTS[0].uscc
        issue_rows(services.issuance, FOOD_TYPE, issuer, rows[:10], directory)  # warm up
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for start in range(10, len(rows), 50):
            issue_rows(services.issuance, FOOD_TYPE, issuer, rows[start : start + 50], directory)
        profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    out = io.StringIO()
    out.write(f"{count} licences in one process under cProfile: {elapsed / count * 1000:.1f} ms each (profiled)\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()

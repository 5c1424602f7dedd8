"""`ecas bench` runs and prints its figures (speed is measured there, never asserted in tests):
the smallest runs that exercise each command, marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cert_authority.cli_runner import ecas

pytestmark = pytest.mark.slow


def test_bench_issue_prints_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECAS_KEK", "bench-test-passphrase")
    code, out = ecas("bench", "issue", "--count", "2", "--workers", "1", "--openssl-seconds", "1", "--json",
                     "--data-dir", str(tmp_path / "bench"))
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["licences"] == 2 and result["licences_per_s"] > 0 and result["openssl_sign_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["licences_per_s"] / result["openssl_sign_per_s"], abs=1e-3)
    # The same run without timestamps, for their cost (docs/timestamping.md).
    assert result["licences_per_s_without_timestamps"] > 0 and "timestamp_cost_percent" in result
    # What the licences take in the file store, and what reading one back costs (docs/storage.md):
    # sizes are asserted (they do not depend on the machine), times only reported.
    assert 0 < result["stored_bytes_per_licence"] <= result["target_stored_bytes_per_licence"] == 20 * 1024
    assert result["unpacked_bytes_per_licence"] > 10 * result["stored_bytes_per_licence"]
    assert result["download_ms_p50"] > 0 and result["download_unpacked_ms_p50"] > 0


def test_bench_crypto_prints_figures(tmp_data_dir: Path) -> None:
    code, out = ecas("bench", "crypto", "--seconds", "0.3", "--json")
    assert code == 0, out
    figures = json.loads(out)
    for key in ("sign_per_s", "verify_per_s", "openssl_sign_per_s", "openssl_verify_per_s"):
        assert figures[key] > 0
    assert not tmp_data_dir.exists()  # a benchmark, it touches no data


def test_bench_serve_runs_a_case_end_to_end(postgres_server: str) -> None:
    """The case scenario against `ecas serve --workers 2` on PostgreSQL: every case opened, two
    licences reused, closed with its receipt, without an error."""
    # Eight seconds: a case takes over a second on a loaded machine, and the first seconds are warm-up
    # (each worker stores and reads the shared parts of packed licence files on its first case).
    code, out = ecas("bench", "serve", "--scenario", "case", "--seconds", "8", "--workers", "2", "--json",
                     "--database-url", postgres_server)
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["case"]["requests"] > 0 and result["case"]["errors"] == 0, result["case"]
    assert result["case"]["vs_baseline"] == round(result["case"]["rps"] / result["healthz"]["rps"], 3)
    assert result["healthz"]["errors"] == 0
    # What each case cost, by who spent it (Linux /proc): a case makes the workers sign a receipt and
    # PostgreSQL run its statements, so neither can be zero; a health check asks nothing of the database.
    cpu = result["case"]["cpu_ms_per_request"]
    assert cpu["service"] > 0 and cpu["database"] > 0 and cpu["load"] > 0
    assert result["healthz"]["cpu_ms_per_request"]["service"] < cpu["service"]


def test_bench_log_appends_and_proves(postgres_server: str, tmp_data_dir: Path) -> None:
    """Leaves queued by worker processes are all sequenced, and the sampled proofs verify."""
    code, out = ecas("bench", "log", "--leaves", "300", "--workers", "1", "--seconds", "0.5", "--json",
                     "--database-url", postgres_server)
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["leaves"] == 300 and result["heads_signed"] >= 1
    assert result["proofs"] > 0 and result["proofs_checked"] >= 1
    for key in ("append_leaves_per_s", "sequence_leaves_per_s", "baseline_sm3_per_s", "baseline_db_round_trips_per_s"):
        assert result[key] > 0

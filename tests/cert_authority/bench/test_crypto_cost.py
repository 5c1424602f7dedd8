"""What SM4-GCM and HMAC-SM3 cost issuance and the show-token check (issue 25's 5% budget), measured
in one process and printed (docs/crypto-assessment.md, "Speed"); nothing timed is asserted.

- Issuance: every SM4-GCM and HMAC-SM3 call timed inside real issuance (one by one, then a batch).
- The show-token check, in-process and through the HTTP route: each part switched off by turns,
  check by check (`full`; `main_subkeys`: personal-data subkeys derived per value, as before they
  were kept; `no_personal`: the holder's values given instead of opened; `no_chain`: no HMAC-SM3
  chain; `none`), medians of CPU time per check.

The smallest run by default (a slow test); the figures in the docs come from
`BENCH_CHECKS=4000 BENCH_LICENCES=40 BENCH_HTTP=2400 pytest -s tests/cert_authority/bench/test_crypto_cost.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

import cert_authority.checking.show_tokens as show_tokens
import keys.aead as aead
from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.issuing.issuance import IssueRequest
from cert_authority.issuing.personal import open_holder
from cert_authority.store import chain
from cert_authority.store.personal import INDEX_KEY_BYTES, SM4_KEY_BYTES, PersonalData, RingDataKeys
from keys.errors import KeysError
from tests.conftest import FOOD_TYPE, ISSUER_USCC, USER_USCC, LicenceEnv, example_data, issue_example

pytestmark = pytest.mark.slow

COUNTER = Actor(label="apikey:counter", role="user", department_uscc=USER_USCC)
CHECKS = int(os.environ.get("BENCH_CHECKS", "100"))
LICENCES = int(os.environ.get("BENCH_LICENCES", "3"))
HTTP_CHECKS = int(os.environ.get("BENCH_HTTP", "40"))
MODES = ("full", "main_subkeys", "no_personal", "no_chain", "none")


class DerivedPerValue(RingDataKeys):
    """The subkeys derived on every call, as before they were kept."""

    def current(self) -> tuple[str, bytes]:
        key = self.ring.current(self.PURPOSE)
        return f"v{key.version}", key.subkey("sm4-gcm", SM4_KEY_BYTES)

    def key(self, key_id: str) -> bytes | None:
        try:
            return self.ring.get(self.PURPOSE, int(key_id[1:])).subkey("sm4-gcm", SM4_KEY_BYTES)
        except KeysError:
            return None

    def index_key(self) -> bytes:
        self.ring.current(self.PURPOSE)
        return self.ring.get(self.PURPOSE, 1).subkey("blind-index", INDEX_KEY_BYTES)


class CallTimes:
    """Thread CPU time spent inside SM4-GCM and HMAC-SM3 calls, wherever they were imported."""

    def __init__(self) -> None:
        self.spent = {"sm4": 0.0, "hmac": 0.0}
        self.calls = {"sm4": 0, "hmac": 0}

    def wrap(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[kind] += time.thread_time() - started
                self.calls[kind] += 1

        return timed

    def reset(self) -> None:
        self.spent = dict.fromkeys(self.spent, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    @property
    def total(self) -> float:
        return self.spent["sm4"] + self.spent["hmac"]


@pytest.fixture
def call_times(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallTimes]:
    times = CallTimes()
    originals: dict[str, Callable[..., Any]] = {
        name: getattr(aead, name) for name in ("sm4_gcm_seal", "sm4_gcm_open", "hmac_sm3")
    }
    for module in list(sys.modules.values()):
        for name, function in originals.items():
            if getattr(module, name, None) is function:
                monkeypatch.setattr(module, name, times.wrap("hmac" if name == "hmac_sm3" else "sm4", function))
    yield times


def _holder(env: LicenceEnv, identifier: str) -> tuple[Any, tuple[str, str], dict[str, str]]:
    data = example_data(FOOD_TYPE)
    env.services.accounts.create(data["operator_code"], data["operator_name"], "correct horse battery")
    with env.engine.connect() as connection:
        query = text("SELECT personal_sealed, holder_code_index FROM licence WHERE identifier = :i")
        sealed, index = connection.execute(query, {"i": identifier}).one()
    opened = open_holder(env.services.show_tokens.personal, identifier, sealed, index)
    return env.services.accounts.holder(data["operator_code"]), (sealed, index), opened


class Switches:
    """Turns parts of the check off for one check (module globals: restored after each)."""

    def __init__(self, verifier: show_tokens.ShowTokenVerifier, opened: dict[str, str]) -> None:
        self.verifier = verifier
        self.opened = opened
        self.pool = verifier.engine.pool
        self.chain = chain._chains[self.pool]
        assert isinstance(verifier.personal.keys, RingDataKeys)
        self.keys = verifier.personal.keys
        self.per_value = DerivedPerValue(self.keys.ring)

    def set(self, mode: str) -> None:
        if mode == "main_subkeys":
            self.verifier.personal.keys = self.per_value
        if mode in ("no_personal", "none"):
            show_tokens.open_holder = lambda *_: dict(self.opened)
        if mode in ("no_chain", "none"):
            del chain._chains[self.pool]

    def restore(self) -> None:
        self.verifier.personal.keys = self.keys
        show_tokens.open_holder = open_holder
        chain._chains[self.pool] = self.chain


def _report(label: str, cpu: dict[str, list[float]]) -> None:
    base = statistics.median(cpu["none"])
    for mode in MODES:
        if cpu.get(mode):
            median = statistics.median(cpu[mode])
            share = (median / base - 1) * 100
            print(f"{label} {mode:13} CPU median {median:7.0f} µs ({share:+.1f} %), n={len(cpu[mode])}")


def test_crypto_cost_of_issuing_and_checking(licence_env: LicenceEnv, call_times: CallTimes) -> None:
    env = licence_env
    print(f"\n{env.engine.dialect.name}, load average {os.getloadavg()}")
    issue_example(env, FOOD_TYPE)
    call_times.reset()
    started = time.perf_counter()
    for _ in range(LICENCES):
        issue_example(env, FOOD_TYPE)
    _print_issuance("one by one", time.perf_counter() - started, call_times)
    data = example_data(FOOD_TYPE)
    requests = [IssueRequest(data | {"premises": f"演示市鼓楼区五四路{n}号"}) for n in range(LICENCES)]
    call_times.reset()
    started = time.perf_counter()
    outcomes = env.services.issuance.issue_many(CLI_ACTOR, FOOD_TYPE, requests, issuer_uscc=ISSUER_USCC)
    _print_issuance("batch", time.perf_counter() - started, call_times)
    assert all(outcome.result for outcome in outcomes)

    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    holder, (sealed, index), opened = _holder(env, identifier)
    verifier = env.services.show_tokens
    tokens = [env.services.holders.show_token(holder, identifier, seconds=300)[0] for _ in range(CHECKS + 20)]
    for token in tokens[:20]:
        verifier.verify(COUNTER, token)
    switches = Switches(verifier, opened)
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    after_check: list[float] = []
    for n, token in enumerate(tokens[20:]):
        mode = MODES[(n + n // len(MODES)) % len(MODES)]  # the order turns every round
        switches.set(mode)
        try:
            started = time.thread_time()
            assert verifier.verify(COUNTER, token).reason == "ok"
            cpu[mode].append((time.thread_time() - started) * 1e6)
        finally:
            switches.restore()
        if mode == "full":  # open_holder alone, with the caches as a check leaves them
            started = time.thread_time()
            open_holder(verifier.personal, identifier, sealed, index)
            after_check.append((time.thread_time() - started) * 1e6)
    _report("show-token check", cpu)
    print(f"open_holder right after a check: median {statistics.median(after_check):.1f} µs")
    for label, personal in (("subkeys derived per value", PersonalData(DerivedPerValue(switches.keys.ring))),
                            ("subkeys kept", verifier.personal)):  # fmt: skip
        started = time.thread_time()
        for _ in range(2000):
            open_holder(personal, identifier, sealed, index)
        print(f"open_holder in a loop, {label}: {(time.thread_time() - started) / 2000 * 1e6:.1f} µs")
    print(f"load average after {os.getloadavg()}")


def _print_issuance(label: str, seconds: float, times: CallTimes) -> None:
    per = 1e6 / LICENCES
    print(
        f"issuing {label}: {seconds * 1e3 / LICENCES:.1f} ms a licence; SM4-GCM {times.spent['sm4'] * per:.0f} µs "
        f"({times.calls['sm4'] / LICENCES:.1f} calls), HMAC-SM3 {times.spent['hmac'] * per:.0f} µs "
        f"({times.calls['hmac'] / LICENCES:.1f} calls): {times.total / seconds * 100:.2f} % of the time"
    )


def test_crypto_cost_of_checking_over_http(licence_env: LicenceEnv) -> None:
    """POST /api/v1/show-tokens/verify in-process (TestClient): process CPU, the client's side included."""
    from fastapi.testclient import TestClient

    from cert_authority.http.app import create_app

    env = licence_env
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    holder, _, opened = _holder(env, identifier)
    app = create_app(env.settings)
    headers = {"Authorization": f"Bearer {app.state.api_keys.create('user', USER_USCC).key}"}
    tokens = [env.services.holders.show_token(holder, identifier, seconds=300)[0] for _ in range(HTTP_CHECKS + 20)]
    modes = ("full", "no_personal", "no_chain", "none")
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    print(f"\n{env.engine.dialect.name}, load average {os.getloadavg()}")
    with TestClient(app) as client:
        for token in tokens[:20]:
            client.post("/api/v1/show-tokens/verify", json={"token": token}, headers=headers)
        switches = Switches(app.state.show_tokens, opened)
        for n, token in enumerate(tokens[20:]):
            mode = modes[(n + n // len(modes)) % len(modes)]
            switches.set(mode)
            try:
                started = time.process_time()
                response = client.post("/api/v1/show-tokens/verify", json={"token": token}, headers=headers)
                cpu[mode].append((time.process_time() - started) * 1e6)
            finally:
                switches.restore()
            assert response.status_code == 200 and response.json()["reason"] == "ok", response.text
    _report("HTTP show-token check", cpu)
    print(f"load average after {os.getloadavg()}")

"""`ecas serve --workers 2`: two processes on one database, and the rules that must hold across
them: a show token is accepted once per department even when both workers are asked at once."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from conftest import FOOD_TYPE, USER_USCC, LicenceEnv, example_data, issue_example
from serving import free_port, wait_until_serving

HOLDER = example_data(FOOD_TYPE)["operator_code"]


def test_replay_protection_holds_across_workers(licence_env: LicenceEnv) -> None:
    env = licence_env
    env.services.accounts.create(HOLDER, "好味道餐饮", "workers-test-password")
    identifier = issue_example(env, FOOD_TYPE).licence.identifier
    from cert_authority.apikeys import ApiKeyService

    key = ApiKeyService(env.registry.engine).create("user", USER_USCC).key
    port = free_port()
    environment = {
        **os.environ,
        "ECAS_DATA_DIR": str(env.settings.data_dir),
        "ECAS_DATABASE_URL": env.settings.effective_database_url,
        "ECAS_KEK": "test-passphrase",
    }
    ecas = str(Path(sys.executable).with_name("ecas"))
    server = subprocess.Popen(
        [ecas, "serve", "--workers", "2", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        session = httpx.post(
            f"{base}/api/v1/holder/login", json={"holder_code": HOLDER, "password": "workers-test-password"}
        ).json()["session_token"]
        token = httpx.post(
            f"{base}/api/v1/holder/licences/{identifier}/show-token",
            headers={"Authorization": f"Bearer {session}"},
            json={},
            timeout=30,
        ).json()["token"]

        def check(_: int) -> str:
            response = httpx.post(
                f"{base}/api/v1/show-tokens/verify",
                json={"token": token},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            return str(response.json()["reason"])

        with ThreadPoolExecutor(8) as pool:
            reasons = list(pool.map(check, range(8)))
        assert sorted(reasons) == ["ok"] + ["replayed"] * 7, reasons
    finally:
        server.terminate()
        server.wait(timeout=30)

"""`ecas bench crypto`: our SM2 sign/verify rate beside `openssl speed sm2`, measured in the same
run on the same machine (the machines are shared and noisy: only same-run ratios mean much)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from keys.sm2 import SM2PrivateKey, backend_version

MESSAGE_SIZE = 1024


def _rate(operation: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            operation()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def measure_ours(seconds: float) -> tuple[float, float]:
    key = SM2PrivateKey.generate()
    message = os.urandom(MESSAGE_SIZE)
    signature = key.sign(message)
    public = key.public_key
    return (
        _rate(lambda: key.sign(message), seconds),
        _rate(lambda: public.verify(signature, message), seconds),
    )


def measure_openssl(seconds: float) -> tuple[float, float]:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    out = subprocess.run(
        [binary, "speed", "-seconds", str(max(1, round(seconds))), "sm2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # "256 bits SM2 (CurveSM2)   0.0004s   0.0004s   2535.7   2831.7"
    match = re.search(r"SM2 \(CurveSM2\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"could not read 'openssl speed sm2' output:\n{out}")
    return float(match.group(1)), float(match.group(2))


def crypto_benchmark(seconds: float = 3.0) -> dict[str, float | str]:
    openssl_sign, openssl_verify = measure_openssl(seconds)
    sign, verify = measure_ours(seconds)
    return {
        "backend": f"cffi → {backend_version()}",
        "sign_per_s": round(sign, 1),
        "verify_per_s": round(verify, 1),
        "openssl_sign_per_s": openssl_sign,
        "openssl_verify_per_s": openssl_verify,
        "sign_ratio": round(sign / openssl_sign, 3),
        "verify_ratio": round(verify / openssl_verify, 3),
        "message_bytes": MESSAGE_SIZE,
        "seconds_each": seconds,
    }

"""`ecas demo`: a complete local authority on the embedded default (SQLite, local files).
Running it again reuses what exists: nothing is duplicated or replaced."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

from cert_authority.pki import PkiService
from cert_authority.settings import Settings


@dataclass(frozen=True)
class DemoDepartment:
    name: str
    uscc: str


DEPARTMENTS = (
    DemoDepartment("演示市市场监督管理局", "11350100MB00000100"),
    DemoDepartment("演示市人力资源和社会保障局", "11350100MB00000201"),
)


def ensure_demo_kek(settings: Settings) -> bool:
    """Without ECAS_KEK, create a random demo passphrase file (0600). True when created."""
    if settings.kek is not None or settings.demo_kek_path.exists():
        return False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.demo_kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return True


def build_demo(pki: PkiService, now: dt.datetime) -> list[str]:
    """Set up the CA and one seal certificate per demo department; return what was done."""
    done = []
    if not pki.initialised:
        pki.init(now)
        done.append("创建根CA与分中心CA")
    issued = {record.certificate.uscc for record in pki.registry.list_issued() if record.revoked_at is None}
    for department in DEPARTMENTS:
        if department.uscc not in issued:
            cert = pki.issue_seal_certificate(name=department.name, uscc=department.uscc, now=now)
            done.append(f"为{department.name}签发印章证书 {cert.serial_hex}")
    return done

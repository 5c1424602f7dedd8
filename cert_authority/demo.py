"""`ecas demo`: a complete local authority on the embedded default (SQLite, local files).
Running it again reuses what exists: nothing is duplicated or replaced."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cert_authority.actors import CLI_ACTOR
from cert_authority.errors import NotFoundError
from cert_authority.pki import PkiService
from cert_authority.registry import RegistryService
from cert_authority.schemas import DepartmentCreate
from cert_authority.settings import Settings
from cert_authority.spec_input import load_definition, parse_type_spec

EXAMPLE_TYPES = Path(__file__).resolve().parent.parent / "examples" / "types"


@dataclass(frozen=True)
class DemoDepartment:
    name: str
    uscc: str


DEPARTMENTS = (
    DemoDepartment("演示市市场监督管理局", "11350100MB00000100"),
    DemoDepartment("演示市人力资源和社会保障局", "11350100MB00000201"),
    DemoDepartment("演示市城市管理局", "11350100MB00000302"),
)
DEMO_AREA_CODE = "350100"


def ensure_demo_kek(settings: Settings) -> bool:
    """Without ECAS_KEK, create a random demo passphrase file (0600). True when created."""
    if settings.kek is not None or settings.demo_kek_path.exists():
        return False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.demo_kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return True


def build_demo(pki: PkiService, registry: RegistryService, now: dt.datetime) -> list[str]:
    """Set up the CA, the demo departments with seal certificates and the example licence types;
    return what was done."""
    done = []
    if not pki.initialised:
        pki.init(now)
        done.append("创建根CA与分中心CA")
    issued = {record.certificate.uscc for record in pki.registry.list_issued() if record.revoked_at is None}
    for department in DEPARTMENTS:
        if department.uscc not in issued:
            cert = pki.issue_seal_certificate(name=department.name, uscc=department.uscc, now=now)
            done.append(f"为{department.name}签发印章证书 {cert.serial_hex}")
    done += _register_departments(registry)
    done += _register_example_types(registry)
    return done


def _register_departments(registry: RegistryService) -> list[str]:
    known = {d.uscc for d in registry.list_departments()}
    done = []
    for department in DEPARTMENTS:
        if department.uscc not in known:
            registry.create_department(
                DepartmentCreate(
                    name=department.name,
                    uscc=department.uscc,
                    area_code=DEMO_AREA_CODE,
                    level="city",
                    roles=["issuer", "user"],
                    contact="演示数据",
                )
            )
            done.append(f"登记部门 {department.name}")
    return done


def _register_example_types(registry: RegistryService) -> list[str]:
    done = []
    for path in sorted(EXAMPLE_TYPES.glob("*.yaml")):
        spec = parse_type_spec(load_definition(path.read_bytes(), path.name))
        try:
            registry.get_type(spec.code)
            continue
        except NotFoundError:
            pass
        registry.register_type(spec, {}, CLI_ACTOR)
        done.append(f"登记证照类型 {spec.name}（{spec.code}）")
    return done

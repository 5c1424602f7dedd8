"""The import rules of ../shared/DESIGN.md, checked by an AST scan of every .py file.

Imports flow one way: cert_authority → verification → seals → templates, keys. The four inner
packages are plain libraries: no web or database frameworks. Inside cert_authority, the rooms
(sub-packages) have a direction too (`ROOMS`): the domain rooms build on one another from `store`
up, the wiring (`services`, `demo`) uses them, and the outer rooms (`web`, `http`, `cli`, `bench`)
use all of that, never the other way. Every import counts, wherever it is
(module level, inside functions, under `if TYPE_CHECKING:`), relative ones included, and so do
`importlib.import_module("...")` / `__import__("...")` calls with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("keys", "templates", "seals", "verification", "cert_authority")

# Project packages each package may import (itself included).
ALLOWED: dict[str, frozenset[str]] = {
    "keys": frozenset({"keys"}),
    "templates": frozenset({"templates", "keys"}),
    "seals": frozenset({"seals", "templates", "keys"}),
    "verification": frozenset({"verification", "seals", "templates", "keys"}),
    "cert_authority": frozenset(PACKAGES),
}
INNER = ("keys", "templates", "seals", "verification")

# cert_authority's top-level modules that every room may use: values and helpers with no room of their own.
CORE = frozenset({"cert_authority", "actors", "errors", "settings", "timeutil"})
_DOMAIN = frozenset(
    {"store", "access", "pki", "timestamping", "registry", "eseals", "transparency", "issuing", "checking",
     "holders", "sharing", "exchange"}
)
# Rooms of cert_authority (a sub-package or a top-level module) and the other rooms each may import.
ROOMS: dict[str, frozenset[str]] = {
    "store": frozenset(),
    "access": frozenset({"store"}),
    "pki": frozenset({"store"}),
    "timestamping": frozenset({"store", "pki"}),
    "registry": frozenset({"store"}),
    "eseals": frozenset({"store", "pki", "timestamping"}),
    "transparency": frozenset({"store", "pki"}),
    "issuing": frozenset({"store", "registry", "pki", "timestamping", "eseals", "transparency"}),
    "checking": frozenset({"store", "pki", "registry", "issuing", "transparency"}),
    "holders": frozenset({"store", "access", "pki", "registry", "issuing"}),
    "sharing": frozenset({"store", "pki", "timestamping", "registry", "issuing", "holders"}),
    "exchange": frozenset({"store", "pki", "registry", "issuing", "checking"}),
    "services": _DOMAIN,
    "demo": _DOMAIN | {"services"},
    "data_encryption": _DOMAIN,
    "boundary": frozenset(),
    "web": _DOMAIN | {"services", "demo", "boundary"},
    "http": _DOMAIN | {"services", "demo", "boundary", "web"},
    "bench": _DOMAIN | {"services", "demo"},
    "cli": _DOMAIN | {"services", "demo", "boundary", "web", "http", "bench", "data_encryption"},
}


def room_of(module: str) -> str | None:
    """The room of a cert_authority module (None for CORE and for other packages)."""
    parts = module.split(".")
    if parts[0] != "cert_authority" or len(parts) == 1 or parts[1] in CORE:
        return None
    return parts[1]


FRAMEWORKS = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlmodel",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "psycopg2",
        "typer",
        "click",
        "jinja2",
        "redis",
    }
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.rule})"


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    """Absolute name of `from <level dots><target> import ...` in `module`; None if beyond the top."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > len(package):
        return None  # Python raises "attempted relative import beyond top-level package"
    base = package[: len(package) - level + 1]
    return ".".join([*base, target] if target else base)


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                found.append((node.lineno, node.module))
                continue
            resolved = _resolve_relative(module, is_package, node.level, node.module)
            if resolved is None:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module is None:
                # `from .. import x`: x may be a module of the resolved package.
                found.extend((node.lineno, f"{resolved}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, resolved))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                found.append((node.lineno, first.value))
    return found


def check_source(source: str, module: str, *, is_package: bool = False, path: str = "<string>") -> list[Violation]:
    """Violations of the import rules in `source`, the text of project module `module`."""
    importer = module.split(".")[0]
    if importer not in ALLOWED:
        raise ValueError(f"{module} is not in one of the packages {PACKAGES}")
    violations = []
    tree = ast.parse(source, filename=path)
    for line, imported in _imported_modules(tree, module, is_package):
        if imported.startswith("."):
            violations.append(Violation(path, line, importer, imported, "relative import beyond the top-level package"))
            continue
        top = imported.split(".")[0]
        if top in ALLOWED and top not in ALLOWED[importer]:
            allowed = ", ".join(sorted(ALLOWED[importer] - {importer})) or "no other project package"
            flow = "cert_authority → verification → seals → templates, keys"
            rule = f"{importer} may import only {allowed} ({flow})"
            violations.append(Violation(path, line, importer, imported, rule))
        elif importer in INNER and top in FRAMEWORKS:
            rule = f"{importer} is a plain library: no web or DB frameworks"
            violations.append(Violation(path, line, importer, imported, rule))
        elif importer == "cert_authority" and (rule := _room_rule(module, imported)):
            violations.append(Violation(path, line, module, imported, rule))
    return violations


def _room_rule(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported` (both in cert_authority), or None if it may."""
    mine, theirs = room_of(module), room_of(imported)
    if theirs is None or mine == theirs:
        return None
    if mine is None:
        return f"cert_authority's core modules ({', '.join(sorted(CORE - {'cert_authority'}))}) import no room"
    if mine not in ROOMS:
        return f"{mine} is not a room of cert_authority: add it to ROOMS in tests/test_import_direction.py"
    if theirs not in ROOMS[mine]:
        allowed = ", ".join(sorted(ROOMS[mine])) or "no other room"
        order = "domain rooms from store up, then wiring, then web/http/cli/bench"
        return f"room {mine} may import only {allowed} ({order})"
    return None


def project_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        files.extend(p for p in sorted((ROOT / package).rglob("*.py")) if ".venv" not in p.parts)
    return files


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def test_packages_respect_import_direction() -> None:
    files = project_files()
    assert any(p.parent.name == "keys" for p in files), f"no sources found under {ROOT}"
    violations: list[Violation] = []
    for path in files:
        module, is_package = _module_name(path)
        source = path.read_text(encoding="utf-8")
        violations.extend(check_source(source, module, is_package=is_package, path=str(path.relative_to(ROOT))))
    assert not violations, "import rules of DESIGN.md broken:\n" + "\n".join(map(str, violations))


# --- the checker itself --------------------------------------------------------------------------


def _found(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    return [(v.line, v.imported) for v in check_source(source, module, is_package=is_package)]


def test_checker_catches_upward_imports() -> None:
    source = (
        "import os\n"
        "from keys.sm2 import sm3\n"
        "from verification import checks\n"
        "import cert_authority.http.app as app\n"
        "def later():\n"
        "    from seals.pdf import seal_pdf\n"
    )
    assert _found(source, "templates.render") == [
        (3, "verification"),
        (4, "cert_authority.http.app"),
        (6, "seals.pdf"),
    ]
    violations = check_source(source, "templates.render", path="templates/render.py")
    message = str(violations[0])
    assert message.startswith("templates/render.py:3: templates imports verification")
    assert "templates may import only keys" in message
    assert _found(source, "cert_authority.http.app") == []


def test_checker_catches_keys_importing_anything_of_the_project() -> None:
    assert _found("from templates import x\n", "keys.sm2") == [(1, "templates")]
    assert _found("from keys.errors import KeysError\n", "keys.sm2") == []


def test_checker_catches_relative_imports() -> None:
    # The five packages are top-level, so a relative import that leaves its own package goes
    # beyond the top level: reported (it names another package, and Python would refuse it).
    assert _found("from ..seals import pdf\n", "templates.render") == [(1, "..seals")]
    assert _found("from .. import verification\n", "seals.pdf") == [(1, "..")]
    assert _found("from ...cert_authority import app\n", "verification.chain.ocsp") == [(1, "...cert_authority")]
    # Inside the own package: resolved and allowed.
    assert _found("from . import layout\n", "templates", is_package=True) == []
    assert _found("from .layout import Page\n", "templates.render") == []
    assert _found("from ..errors import KeysError\n", "keys.ca.service") == []
    assert _found("from .. import errors\n", "keys.ca", is_package=True) == []
    assert _resolve_relative("keys.ca.service", False, 2, "errors") == "keys.errors"
    assert _resolve_relative("keys.ca", True, 1, None) == "keys.ca"
    assert _resolve_relative("keys.sm2", False, 2, "x") is None


def test_checker_catches_frameworks_in_inner_packages() -> None:
    source = "import sqlalchemy as sa\nfrom fastapi import APIRouter\nimport starlette.responses\nimport jinja2\n"
    for package in INNER:
        assert [line for line, _ in _found(source, f"{package}.mod")] == [1, 2, 3, 4]
    assert _found(source, "cert_authority.http.app") == []
    assert _found("import sqlalchemyx\nimport typing\n", "seals.x") == []


def test_checker_catches_dynamic_and_type_checking_imports() -> None:
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from cert_authority.store.models import Licence\n"
        "mod = importlib.import_module('verification.status')\n"
        "other = __import__('redis')\n"
    )
    assert _found(source, "seals.batch") == [
        (4, "cert_authority.store.models"),
        (5, "verification.status"),
        (6, "redis"),
    ]


def test_checker_catches_rooms_importing_the_wrong_way() -> None:
    assert _found("from cert_authority.http.app import create_app\n", "cert_authority.issuing.batch") == [
        (1, "cert_authority.http.app")
    ]
    assert _found("from cert_authority.services import x\n", "cert_authority.issuing.batch") == [
        (1, "cert_authority.services")
    ]
    assert _found("from cert_authority.cli.support import x\n", "cert_authority.bench.serve") == [
        (1, "cert_authority.cli.support")
    ]
    assert _found("from cert_authority.issuing import x\n", "cert_authority.store.audit") == [
        (1, "cert_authority.issuing")
    ]
    assert _found("from cert_authority.store.models import x\n", "cert_authority.timeutil") == [
        (1, "cert_authority.store.models")
    ]
    assert _found("from ..http import app\n", "cert_authority.web.wallet") == [(1, "cert_authority.http")]
    assert _found("from cert_authority.x import y\n", "cert_authority.newroom.a") == [(1, "cert_authority.x")]
    # Downward and sideways within a room pass.
    assert _found("from cert_authority.issuing.issuance import x\n", "cert_authority.http.routes.licences") == []
    assert _found("from cert_authority.store.models import x\n", "cert_authority.issuing.records") == []
    assert _found("from cert_authority.errors import x\n", "cert_authority.store.db") == []
    assert _found("from . import dates\n", "cert_authority.issuing", is_package=True) == []


def test_allowed_directions_pass() -> None:
    assert _found("from seals import x\nfrom templates import y\nfrom keys import z\n", "verification.a") == []
    assert _found("from templates import y\nfrom keys import z\n", "seals.a") == []
    assert _found("from verification import v\nimport fastapi\n", "cert_authority.http.app") == []

"""The example licence types shipped in examples/types, loaded for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from templates.spec import LicenceTypeSpec, parse_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "types"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def example_data(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def example_spec(name: str) -> LicenceTypeSpec:
    return parse_model(LicenceTypeSpec, example_data(name))

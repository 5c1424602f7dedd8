"""Claiming a licence type from the provincial catalogue (认领, issue 20 part 6): `ecas types claim
CATALOGUE_FILE CODE --template FILE --issuer USCC` on SQLite and PostgreSQL. The shipped catalogue
covers the example types exactly; a claimed type keeps the catalogue's code and definition and has
the department's template and base image; bad catalogues, codes and departments are refused with
one clear line and nothing stored."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from cert_authority.registry.catalogue import load_catalogue
from cert_authority.registry.spec_input import parse_type_spec
from templates.errors import SpecError
from tests.cert_authority.cli.test_cli_registry import cli_db, write_yaml  # noqa: F401 (fixture)
from tests.cert_authority.cli_runner import fails, ok
from tests.conftest import ISSUER_USCC, USER_USCC

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE = ROOT / "examples" / "catalogue.yaml"
EXAMPLES = sorted((ROOT / "examples" / "types").glob("*.yaml"))
FOOD = "11100000MA0000001Q001"


def example(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def test_the_example_catalogue_covers_the_example_types() -> None:
    catalogue = load_catalogue(CATALOGUE.read_bytes())
    assert sorted(e.code for e in catalogue.types) == sorted(example(p)["code"] for p in EXAMPLES)
    for path in EXAMPLES:
        spec = example(path)
        entry = catalogue.entry(spec["code"]).definition(spec["issuers"][0])
        assert entry == parse_type_spec({k: v for k, v in spec.items() if k != "template"}), path.name


def test_a_bad_catalogue_names_each_problem() -> None:
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    data["types"][0]["fields"][0]["type"] = "colour"
    data["types"][1]["code"] = "11100000MA0000001Q00X"
    with pytest.raises(SpecError) as error:
        load_catalogue(yaml.safe_dump(data, allow_unicode=True).encode())
    assert "11100000MA0000001Q002（营业执照）：fields.0.type" in str(error.value)
    assert "11100000MA0000001Q00X（食品经营许可证）：code：证照类型代码后3位应为数字" in str(error.value)
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    data["types"].append(data["types"][0])
    with pytest.raises(SpecError, match="目录中证照类型代码重复：11100000MA0000001Q002"):
        load_catalogue(json.dumps(data, ensure_ascii=False).encode())


def test_a_department_claims_a_type_with_its_own_template_and_base_image(cli_db: Path, tmp_path: Path) -> None:  # noqa: F811
    ok("departments", "add", "--name", "测试市市场监督管理局", "--uscc", ISSUER_USCC, "--area-code", "350100",
       "--level", "city", "--roles", "issuer,user")
    ok("departments", "add", "--name", "测试省市场监督管理局", "--uscc", USER_USCC, "--area-code", "350000",
       "--level", "province", "--roles", "issuer")
    template = example(ROOT / "examples" / "types" / "food-business-licence.yaml")["template"]
    template["background"] = {"image": "base.jpg"}
    Image.new("RGB", (1123, 794), (236, 244, 236)).save(buffer := io.BytesIO(), "JPEG")
    (tmp_path / "base.jpg").write_bytes(buffer.getvalue())
    template_file = write_yaml(tmp_path / "food-template.yaml", template)

    # Refused, nothing stored: a code not in the catalogue, a department of another level.
    assert "中没有类型代码 11100000MA0000001Q009" in fails(
        "types", "claim", str(CATALOGUE), "11100000MA0000001Q009", "--template", str(template_file),
        "--issuer", ISSUER_USCC,
    )
    assert "由 city 级部门颁发" in fails(
        "types", "claim", str(CATALOGUE), FOOD, "--template", str(template_file), "--issuer", USER_USCC
    )
    unplaced = write_yaml(tmp_path / "short.yaml", {**template, "fields": template["fields"][:3]})
    assert "没有在模板中放置" in fails(
        "types", "claim", str(CATALOGUE), FOOD, "--template", str(unplaced), "--issuer", ISSUER_USCC
    )
    assert json.loads(ok("types", "list", "--json")) == []

    out = ok("types", "claim", str(CATALOGUE), FOOD, "--template", str(template_file), "--issuer", ISSUER_USCC)
    assert f"已认领证照类型 {FOOD} 食品经营许可证（演示省数据管理局 2026-12）" in out
    claimed = json.loads(ok("types", "show", FOOD, "--json"))
    entry = load_catalogue(CATALOGUE.read_bytes()).entry(FOOD)
    assert (claimed["code"], claimed["issuers"], claimed["issuer_level"]) == (FOOD, [ISSUER_USCC], "city")
    assert claimed["spec"]["fields"] == entry.definition(ISSUER_USCC).model_dump(mode="json")["fields"]
    assert claimed["versions"][0]["template"]["background"]["image"] == "base.jpg"
    assert "已登记" in fails(
        "types", "claim", str(CATALOGUE), FOOD, "--template", str(template_file), "--issuer", ISSUER_USCC
    )
    preview = tmp_path / "preview.png"
    ok("types", "preview", FOOD, "-o", str(preview))
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

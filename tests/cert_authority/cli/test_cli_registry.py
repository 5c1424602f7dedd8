"""`ecas departments`, `ecas apikey` and `ecas types` as an operator uses them: real files, a real
database (SQLite and PostgreSQL), one clear line on every error."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cert_authority.cli.main import app
from tests.cert_authority.cli_runner import ecas, ok, runner
from tests.conftest import ISSUER_USCC, TYPE_CODE, USER_USCC, template_data, type_spec_data


def write_yaml(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def cli_db(tmp_data_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECAS_DATABASE_URL", database_url)
    return tmp_data_dir


def add_departments() -> None:
    ok("departments", "add", "--name", "测试市市场监督管理局", "--uscc", ISSUER_USCC, "--area-code", "350100",
       "--level", "city", "--roles", "issuer,user", "--contact", "张三")
    ok("departments", "add", "--name", "测试市人社局", "--uscc", USER_USCC, "--area-code", "350100",
       "--level", "city", "--roles", "user")


def test_departments_and_api_keys(cli_db: Path) -> None:
    add_departments()
    listed = json.loads(ok("departments", "list", "--json"))
    assert [(d["uscc"], d["roles"]) for d in listed] == [(ISSUER_USCC, ["issuer", "user"]), (USER_USCC, ["user"])]
    assert "测试市人社局" in ok("departments", "list")

    result = runner.invoke(app, ["apikey", "create", "--admin"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("ecas_") and len(key) == 48  # the key alone on stdout, for scripts
    assert "只显示这一次" in result.output
    issuer_key = runner.invoke(app, ["apikey", "create", "--uscc", ISSUER_USCC, "--role", "issuer"]).stdout.strip()

    keys = json.loads(ok("apikey", "list", "--json"))
    assert [(k["role"], k["department_uscc"], k["prefix"]) for k in keys] == [
        ("admin", None, key[:12]),
        ("issuer", ISSUER_USCC, issuer_key[:12]),
    ]
    assert key not in ok("apikey", "list") and issuer_key not in ok("apikey", "list", "--json")
    assert "已吊销" in ok("apikey", "revoke", key[:12])
    assert json.loads(ok("apikey", "list", "--json"))[0]["revoked_at"] is not None
    code, out = ecas("apikey", "revoke", key[:12])
    assert code == 1 and "已于" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("departments", "add", "--name", "某局", "--uscc", "11350100MB00000101", "--area-code", "350100",
          "--level", "city", "--roles", "issuer"), "uscc：统一社会信用代码校验位错误"),
        (("departments", "add", "--name", "某局", "--uscc", ISSUER_USCC, "--area-code", "350100",
          "--level", "city", "--roles", "issuer"), "已登记"),
        (("departments", "add", "--name", "某局", "--uscc", "11350100MB00000403", "--area-code", "3501",
          "--level", "city", "--roles", "issuer"), "area_code：格式不对"),  # not pydantic's English
        (("departments", "add", "--name", "某局", "--uscc", "11350100MB00000403", "--area-code", "350100",
          "--level", "town", "--roles", "issuer"), "level：取值无效，可选："),
        (("apikey", "create", "--uscc", USER_USCC, "--role", "issuer"), "没有颁证部门角色"),
        (("apikey", "create", "--uscc", "11350100MB00000403", "--role", "user"), "尚未登记"),
        (("apikey", "create", "--role", "issuer"), "须属于一个部门"),
        (("apikey", "create", "--role", "root", "--uscc", ISSUER_USCC), "未知角色"),
        (("apikey", "create", "--admin", "--uscc", ISSUER_USCC), "--admin 不能与"),
        (("apikey", "create"), "--admin"),
        (("apikey", "revoke", "ecas_nothere"), "没有前缀为"),
        (("types", "show", TYPE_CODE), "尚未登记"),
        (("types", "preview", TYPE_CODE, "-o", "x.png"), "尚未登记"),
        (("types", "register", "/nonexistent/type.yaml"), "文件或目录不存在：/nonexistent/type.yaml"),
    ],
)
def test_bad_input_gets_one_clear_line(cli_db: Path, args: tuple[str, ...], message: str) -> None:
    add_departments()
    code, out = ecas(*args)
    assert code == 1 and message in out, out


def test_register_show_version_and_preview_types(cli_db: Path, tmp_path: Path) -> None:
    add_departments()
    # The background image path is relative to the definition file's folder.
    folder = tmp_path / "defs"
    (folder / "images").mkdir(parents=True)
    picture = io.BytesIO()
    Image.new("RGB", (1754, 1240), (240, 246, 250)).save(picture, "PNG")
    (folder / "images" / "bg.png").write_bytes(picture.getvalue())
    with_image = type_spec_data(template=template_data(background={"image": "images/bg.png"}))
    spec = write_yaml(folder / "type.yaml", with_image)
    assert f"已登记证照类型 {TYPE_CODE} 测试许可证（模板第 1 版）" in ok("types", "register", str(spec))
    code, out = ecas("types", "register", str(spec))
    assert code == 1 and f"证照类型代码 {TYPE_CODE} 已登记" in out

    template = write_yaml(folder / "v2.yaml", template_data(background={"design": "blue"}, note="蓝色底纹"))
    assert "新增模板第 2 版" in ok("types", "add-template", TYPE_CODE, str(template))

    assert TYPE_CODE in ok("types", "list")
    (listed,) = json.loads(ok("types", "list", "--json"))
    assert listed["latest_version"] == 2 and listed["issuers"] == [ISSUER_USCC]
    shown = ok("types", "show", TYPE_CODE)
    assert "名称（name，text）" in shown and "模板 v2" in shown and "蓝色底纹" in shown
    detail = json.loads(ok("types", "show", TYPE_CODE, "--json"))
    assert [v["created_by"] for v in detail["versions"]] == ["cli", "cli"]
    assert detail["versions"][0]["template"]["background"]["image"] == "images/bg.png"

    for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF-"), ("ofd", b"PK\x03\x04")):
        output = tmp_path / f"preview.{fmt}"
        ok("types", "preview", TYPE_CODE, "--version", "1", "--format", fmt, "-o", str(output))
        assert output.read_bytes().startswith(magic)
    code, out = ecas("types", "preview", TYPE_CODE, "--format", "gif", "-o", str(tmp_path / "x.gif"))
    assert code == 1 and "不支持的格式 'gif'" in out


def test_bad_definition_files(cli_db: Path, tmp_path: Path) -> None:
    add_departments()
    unknown = write_yaml(tmp_path / "unknown.yaml", {**type_spec_data(), "colour": "red"})
    code, out = ecas("types", "register", str(unknown))
    assert code == 1 and "colour：未知的键" in out
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("code: a\nname: b\ncode: c\n", encoding="utf-8")
    code, out = ecas("types", "register", str(duplicate))
    assert code == 1 and "第 3 行：键 code 重复" in out
    no_image = type_spec_data(template=template_data(background={"image": "no.png"}))
    missing_image = write_yaml(tmp_path / "img.yaml", no_image)
    code, out = ecas("types", "register", str(missing_image))
    assert code == 1 and "no.png" in out
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (3 * 1024 * 1024))
    code, out = ecas("types", "register", str(huge))
    assert code == 1 and "过大" in out
    assert json.loads(ok("types", "list", "--json")) == []

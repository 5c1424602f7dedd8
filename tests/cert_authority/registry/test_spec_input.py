"""Reading definitions people write: YAML or JSON, strictly (duplicate keys, aliases, sizes)."""

from __future__ import annotations

import json

import pytest
import yaml

from cert_authority.registry.spec_input import MAX_DEFINITION_BYTES, load_definition, parse_type_spec
from templates.errors import SpecError
from tests.conftest import type_spec_data

pytestmark = pytest.mark.unit  # parsing only, no database


def test_yaml_and_json_give_the_same_spec() -> None:
    data = type_spec_data()
    from_yaml = parse_type_spec(load_definition(yaml.safe_dump(data, allow_unicode=True).encode()))
    from_json = parse_type_spec(load_definition(json.dumps(data, ensure_ascii=False).encode()))
    assert from_yaml == from_json == parse_type_spec(data)


def test_dates_stay_text_in_yaml() -> None:
    assert load_definition(b"example: 2026-01-01\nflag: true\n") == {"example": "2026-01-01", "flag": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"name: a\ncode: b\nname: c\n", "第 3 行：键 name 重复"),
        (b'{"name": "a", "name": "b"}', "键 name 重复"),
        (b"a: &x [1, 2]\nb: *x\n", "第 2 行：不支持 YAML 别名（*x）"),
        (b"name: [unclosed\n", "YAML 格式错误"),
        (b'{"name": }', "JSON 格式错误（第 1 行"),
        (b"- a\n- b\n", "应为键值映射"),
        (b"", "应为键值映射"),
        (b"\xff\xfe", "不是 UTF-8 文本"),
        (b"a: !!python/object:os.system echo\n", "YAML 格式错误"),
    ],
)
def test_bad_definition_text_is_one_clear_error(text: bytes, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_definition(text, "类型定义")
    assert message in str(caught.value)


def test_oversized_definitions_are_refused() -> None:
    with pytest.raises(SpecError, match="过大"):
        load_definition(b"#" * (MAX_DEFINITION_BYTES + 1))


def test_unknown_yaml_keys_are_named() -> None:
    text = yaml.safe_dump({**type_spec_data(), "colour": "red"}, allow_unicode=True).encode()
    with pytest.raises(SpecError, match="colour：未知的键"):
        parse_type_spec(load_definition(text))


@pytest.mark.parametrize(
    "text",
    [
        b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # JSON
        b"code: " + b"[" * 100_000 + b"]" * 100_000,  # YAML flow style
        b"code: " + b"{x: " * 20_000 + b"1" + b"}" * 20_000,
        b"code:\n" + b"".join(b" " * level + b"-\n" for level in range(1, 1400)),  # YAML block style
        b"code:\n" + b"".join(b"  " * level + b"- \n" for level in range(1, 40)),  # parses, but too deep
    ],
)
def test_deep_nesting_is_refused_not_a_crash(text: bytes) -> None:
    """Attack: a definition nested thousands of levels deep was an unhandled RecursionError (500)."""
    with pytest.raises(SpecError, match="嵌套层次过深"):
        load_definition(text)


def test_ordinary_nesting_still_loads() -> None:
    assert load_definition(b'{"a": [[{"b": [1]}]]}') == {"a": [[{"b": [1]}]]}

"""Reading licence-type and template definitions that people write, in YAML or JSON.

Stricter than plain `yaml.safe_load`: a key written twice is an error (YAML and JSON would keep
the last one silently), aliases are refused (they can expand into huge documents), and dates stay
text (face values are checked as text by the spec), and nesting is bounded (a definition is a few
levels deep; thousands of levels exhausted the parser's recursion). Every problem becomes a
SpecError in Chinese.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from templates.errors import SpecError
from templates.layout_spec import TemplateSpec
from templates.spec import LicenceTypeSpec, parse_model

MAX_DEFINITION_BYTES = 2 * 1024 * 1024
MAX_NESTING = 32  # the example definitions are 5 levels deep


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError([f"第 {event.start_mark.line + 1} 行：不支持 YAML 别名（*{event.anchor}），请直接写出内容"])
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise SpecError([f"第 {key_node.start_mark.line + 1} 行：键 {key} 重复"])
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# No implicit timestamps: `2026-01-01` stays the string it looks like.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SpecError([f"键 {key} 重复"])
        result[key] = value
    return result


def load_definition(data: bytes, source: str = "定义") -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping (not yet validated against a spec)."""
    if len(data) > MAX_DEFINITION_BYTES:
        raise SpecError([f"{source}过大：{len(data) / 1048576:.1f} MB，上限 {MAX_DEFINITION_BYTES // 1048576} MB"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SpecError([f"{source}不是 UTF-8 文本"]) from None
    too_deep = SpecError([f"{source}嵌套层次过深（上限 {MAX_NESTING} 层）"])
    if _nesting(text) > MAX_NESTING:
        raise too_deep
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise SpecError([f"{source}：JSON 格式错误（第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg}）"]) from None
    else:
        try:
            loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
            raise SpecError([f"{source}：YAML 格式错误（第 {line} 行：{exc.problem}）"]) from None
        except yaml.YAMLError as exc:
            raise SpecError([f"{source}：YAML 格式错误（{exc}）"]) from None
        except RecursionError:  # block-style YAML nests by indentation, which _nesting does not see
            raise too_deep from None
    if _depth(loaded) > MAX_NESTING:
        raise too_deep
    if not isinstance(loaded, dict):
        raise SpecError([f"{source}应为键值映射（YAML 的 key: value 或 JSON 对象），收到 {type(loaded).__name__}"])
    return loaded


def _nesting(text: str) -> int:
    """An upper bound of the flow-style nesting ([ and { in JSON and YAML), read before parsing so
    the parser never recurses deeply. Brackets inside strings count too: a bound, not a parse."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth = depth + 1 if match.group() in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and mappings (iterative: no recursion to exhaust)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_NESTING:
                break
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def parse_type_spec(data: Any) -> LicenceTypeSpec:
    return parse_model(LicenceTypeSpec, data)


def parse_template(data: Any) -> TemplateSpec:
    return parse_model(TemplateSpec, data)

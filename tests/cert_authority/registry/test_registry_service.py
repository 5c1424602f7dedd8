"""The licence-type registry service on SQLite and PostgreSQL: departments, registration in one
transaction, template versions that never change, concurrent version numbers, who may do what."""

from __future__ import annotations

import copy
import io
import json
import threading
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from cert_authority.actors import CLI_ACTOR, Actor
from cert_authority.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    StoredFileError,
)
from cert_authority.registry.schemas import DepartmentCreate
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import parse_template, parse_type_spec
from cert_authority.store.filestore import all_names
from cert_authority.store.models import DepartmentRow, LicenceTypeIssuerRow, LicenceTypeRow, TemplateVersionRow
from keys.sm2 import sm3
from templates.errors import LayoutError, SpecError
from templates.spec import parse_model
from tests.conftest import (
    AUTHORITY_USCC,
    ISSUER_USCC,
    OTHER_ISSUER_USCC,
    TYPE_CODE,
    USER_USCC,
    add_department,
    overwrite_stored,
    raw_stored,
    template_data,
    type_spec_data,
)

TABLES: tuple[type[SQLModel], ...] = (LicenceTypeRow, LicenceTypeIssuerRow, TemplateVersionRow)


def row_counts(registry: RegistryService) -> dict[str, int]:
    with Session(registry.engine) as session:
        return {str(t.__tablename__): session.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def stored_files(registry: RegistryService) -> list[str]:
    return list(all_names(registry.filestore.backend))


def register(registry: RegistryService, data: dict[str, Any] | None = None, **images: bytes) -> str:
    spec = parse_type_spec(data or type_spec_data())
    return registry.register_type(spec, images, CLI_ACTOR).code


def png(width: int, height: int, colour: tuple[int, int, int] = (240, 250, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


# --- departments -------------------------------------------------------------------------------
def test_departments_are_registered_once_and_found_by_uscc(registry: RegistryService) -> None:
    created = add_department(registry, ISSUER_USCC, ("issuer", "user"))
    add_department(registry, USER_USCC, ("user",), name="测试市人力资源和社会保障局")
    assert created.roles == ["issuer", "user"] and created.created_at.tzinfo is not None
    assert [d.uscc for d in registry.list_departments()] == [ISSUER_USCC, USER_USCC]
    assert registry.get_department_by_uscc(USER_USCC).name == "测试市人力资源和社会保障局"
    with pytest.raises(ConflictError, match=f"{ISSUER_USCC} 的部门已登记"):
        add_department(registry, ISSUER_USCC)
    with pytest.raises(NotFoundError, match="尚未登记"):
        registry.get_department_by_uscc(OTHER_ISSUER_USCC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"uscc": "11350100MB00000101"}, "uscc：统一社会信用代码校验位错误：应为 0"),
        ({"area_code": "35010"}, "area_code"),
        ({"level": "county"}, "level：取值无效"),
        ({"roles": ["owner"]}, "roles.0：取值无效"),
        ({"roles": []}, "roles：项数太少"),
        ({"phone": "123"}, "phone：未知的键"),
    ],
)
def test_department_input_is_checked(change: dict[str, Any], message: str) -> None:
    data = {"name": "测试局", "uscc": ISSUER_USCC, "area_code": "350100", "level": "city", "roles": ["issuer"]}
    with pytest.raises(SpecError) as caught:
        parse_model(DepartmentCreate, {**data, **change})
    assert message in str(caught.value)


# --- registering types -------------------------------------------------------------------------
def test_register_list_and_show(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    add_department(registry, OTHER_ISSUER_USCC, name="测试市某区市场监督管理局")
    detail = registry.register_type(
        parse_type_spec(type_spec_data(issuers=[ISSUER_USCC, OTHER_ISSUER_USCC])), {}, CLI_ACTOR
    )
    assert detail.code == TYPE_CODE and detail.latest_version == 1 and detail.created_by == "cli"
    assert detail.defining_authority.uscc == AUTHORITY_USCC
    assert detail.issuers == [ISSUER_USCC, OTHER_ISSUER_USCC]
    assert "template" not in detail.spec and detail.spec["fields"][0]["key"] == "name"
    (version,) = detail.versions
    assert version.version == 1 and version.template["background"]["design"] == "green"
    # The stored background is the generated JPEG, under its SM3 digest.
    background = registry.filestore.get(version.background_sm3)
    assert background.startswith(b"\xff\xd8") and sm3(background).hex() == version.background_sm3

    (listed,) = registry.list_types()
    assert listed.code == TYPE_CODE and listed.latest_version == 1
    assert registry.get_type(TYPE_CODE) == detail
    assert registry.type_spec(TYPE_CODE).template is None
    assert row_counts(registry) == {"licence_type": 1, "licence_type_issuer": 2, "template_version": 1}
    with pytest.raises(NotFoundError, match="尚未登记"):
        registry.get_type(AUTHORITY_USCC + "002")


def test_duplicate_code_is_409_and_nothing_half_stored(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    before = row_counts(registry)
    again = type_spec_data(name="另一个名称", template=template_data(background={"design": "blue"}))
    with pytest.raises(ConflictError, match=f"证照类型代码 {TYPE_CODE} 已登记"):
        register(registry, again)
    assert row_counts(registry) == before
    assert registry.get_type(TYPE_CODE).name == "测试许可证"


@pytest.mark.parametrize(
    ("issuers", "message"),
    [
        ([ISSUER_USCC, OTHER_ISSUER_USCC], f"issuers 中的部门尚未登记：{OTHER_ISSUER_USCC}"),
        ([USER_USCC], f"没有颁证（issuer）角色：测试市人社局（{USER_USCC}）"),
    ],
)
def test_issuers_must_be_registered_issuer_departments(
    registry: RegistryService, issuers: list[str], message: str
) -> None:
    add_department(registry, ISSUER_USCC)
    add_department(registry, USER_USCC, ("user",), name="测试市人社局")
    with pytest.raises(InvalidRequestError, match=message):
        register(registry, type_spec_data(issuers=issuers))
    assert row_counts(registry) == {"licence_type": 0, "licence_type_issuer": 0, "template_version": 0}
    assert stored_files(registry) == []  # refused before any file was written


def test_a_type_needs_its_first_template(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    data = type_spec_data()
    del data["template"]
    with pytest.raises(SpecError, match="缺少 template"):
        register(registry, data)


def test_values_that_cannot_fit_are_refused_before_storing(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    data = type_spec_data()
    data["fields"][0]["max_length"] = 400  # type: ignore[index]
    with pytest.raises(LayoutError):
        register(registry, data)
    assert row_counts(registry)["licence_type"] == 0 and stored_files(registry) == []


def test_uploaded_background_is_checked_and_stored_as_jpeg(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    data = type_spec_data(template=template_data(background={"image": "bg.png"}))
    with pytest.raises(SpecError, match=r"bg\.png 没有随模板上传"):
        register(registry, data)
    with pytest.raises(InvalidRequestError, match=r"上传了模板没有引用的文件：extra\.png"):
        register(registry, data, **{"bg.png": png(1754, 1240), "extra.png": png(10, 10)})
    with pytest.raises(SpecError, match="宽高比"):
        register(registry, data, **{"bg.png": png(1000, 1000)})
    register(registry, data, **{"bg.png": png(1754, 1240)})
    stored = registry.get_template(TYPE_CODE)
    assert registry.filestore.get(stored.background_sm3).startswith(b"\xff\xd8")


# --- what a bad definition gets back -----------------------------------------------------------
def _placements() -> list[Any]:
    placements = template_data()["fields"]
    assert isinstance(placements, list)
    return placements


def _field(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": "名称", "type": "text", **extra}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(type_spec_data())
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


BAD_SPECS = {
    "issuer USCC check character": (_with("issuers", ["11350100MB00000101"]), "统一社会信用代码校验位错误"),
    "type code check character": (_with("code", "11100000MA0000001R001"), "证照类型代码前18位：统一社会信用代码校验位"),
    "type code sequence": (_with("code", AUTHORITY_USCC + "0A1"), "后3位应为数字"),
    "unknown field type": (_with("fields.1.type", "money"), "fields.1.type"),
    "duplicate field key": (_with("fields.1", _field("name", max_length=10)), "字段 key 重复：name"),
    "bad pattern": (_with("fields.1.pattern", "[0-9"), "pattern 不是有效的正则表达式"),
    "unknown key": (_with("colour", "red"), "colour：未知的键"),
    "unknown nested key": (_with("holder.nickname_field", "name"), "holder.nickname_field：未知的键"),
    "placement outside the page": (
        _with("template.fields.0.box", {"x": 250, "y": 50, "w": 60, "h": 10}),
        "fields「name」 超出页面（297×210 mm）",
    ),
    "placement overlapping the seal": (
        _with("template.fields.0", {"field": "name", "box": {"x": 190, "y": 150, "w": 30, "h": 10}}),
        "fields「name」 与印章位置重叠",
    ),
    "field not placed": (_with("template.fields", _placements()[1:]), "没有在模板中放置：name"),
}


@pytest.mark.parametrize("case", BAD_SPECS)
def test_bad_specs_name_the_problem(case: str) -> None:
    data, message = BAD_SPECS[case]
    with pytest.raises(SpecError) as caught:
        parse_type_spec(data)
    assert message in str(caught.value), caught.value.problems


def test_a_bad_template_version_names_the_problem() -> None:
    with pytest.raises(SpecError, match="qr：缺少必填项"):
        parse_template({k: v for k, v in template_data().items() if k != "qr"})


# --- template versions -------------------------------------------------------------------------
def test_new_versions_leave_earlier_ones_untouched(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    with Session(registry.engine) as session:
        v1_row = session.exec(select(TemplateVersionRow)).one()
        v1_json, v1_background = v1_row.template_json, v1_row.background_sm3
    v1_file = registry.filestore.get(v1_background)

    blue = parse_template(template_data(background={"design": "blue"}, note="换用蓝色底纹"))
    assert registry.add_template_version(TYPE_CODE, blue, {}, CLI_ACTOR) == 2
    v1, v2 = registry.list_template_versions(TYPE_CODE)
    assert (v1.version, v2.version, v2.note) == (1, 2, "换用蓝色底纹")
    assert v2.background_sm3 != v1_background
    with Session(registry.engine) as session:
        row = session.exec(select(TemplateVersionRow).where(TemplateVersionRow.version == 1)).one()
        assert (row.template_json, row.background_sm3) == (v1_json, v1_background)
    assert registry.filestore.get(v1_background) == v1_file
    assert registry.get_template(TYPE_CODE).version == 2
    assert registry.get_template(TYPE_CODE, 1).template.background.design == "green"
    assert json.loads(v1_json)["background"]["design"] == "green"
    assert registry.get_type(TYPE_CODE).latest_version == 2
    with pytest.raises(NotFoundError, match="没有第 7 版模板"):
        registry.get_template(TYPE_CODE, 7)


def test_a_new_version_must_place_every_field(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    partial = parse_template(template_data(fields=_placements()[1:]))
    with pytest.raises(SpecError, match="没有在模板中放置：name"):
        registry.add_template_version(TYPE_CODE, partial, {}, CLI_ACTOR)
    with pytest.raises(NotFoundError):
        registry.add_template_version(AUTHORITY_USCC + "009", partial, {}, CLI_ACTOR)
    assert row_counts(registry)["template_version"] == 1


def test_concurrent_versions_get_distinct_numbers(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    designs = ["blue", "red", "gold", "blue"]
    templates = [parse_template(template_data(background={"design": d}, note=str(n))) for n, d in enumerate(designs)]
    barrier = threading.Barrier(len(templates))
    results: list[int] = []
    errors: list[BaseException] = []

    def add(template: Any) -> None:
        try:
            barrier.wait()
            results.append(registry.add_template_version(TYPE_CODE, template, {}, CLI_ACTOR))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(t,)) for t in templates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == [2, 3, 4, 5]
    assert [v.version for v in registry.list_template_versions(TYPE_CODE)] == [1, 2, 3, 4, 5]


# --- who may do what ---------------------------------------------------------------------------
def test_issuers_register_only_types_their_department_issues(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    add_department(registry, OTHER_ISSUER_USCC, name="测试市某区市场监督管理局")
    other = Actor("apikey:2", "issuer", OTHER_ISSUER_USCC)
    with pytest.raises(PermissionDeniedError, match="不在该证照类型的颁发部门"):
        register_as(registry, other)
    with pytest.raises(PermissionDeniedError, match="仅限管理员、颁证部门"):
        register_as(registry, Actor("apikey:3", "user", ISSUER_USCC))
    # Attack: an issuer names another department as an issuer of its own type.
    both = parse_type_spec(type_spec_data(issuers=[OTHER_ISSUER_USCC, ISSUER_USCC]))
    with pytest.raises(PermissionDeniedError, match=f"只有管理员能把其他部门列为颁发部门（issuers 中的 {ISSUER_USCC}"):
        registry.register_type(both, {}, other)
    assert row_counts(registry)["licence_type"] == 0

    own = Actor("apikey:1", "issuer", ISSUER_USCC)
    assert register_as(registry, own).created_by == "apikey:1"
    blue = parse_template(template_data(background={"design": "blue"}))
    with pytest.raises(PermissionDeniedError, match=f"不是证照类型 {TYPE_CODE} 的颁发部门"):
        registry.add_template_version(TYPE_CODE, blue, {}, other)
    with pytest.raises(PermissionDeniedError):
        registry.add_template_version(TYPE_CODE, blue, {}, Actor("apikey:4", "auditor", ISSUER_USCC))
    assert registry.add_template_version(TYPE_CODE, blue, {}, own) == 2


def register_as(registry: RegistryService, actor: Actor) -> Any:
    return registry.register_type(parse_type_spec(type_spec_data()), {}, actor)


# --- previews ----------------------------------------------------------------------------------
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "ofd": b"PK\x03\x04"}


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_previews_of_stored_and_unsaved_templates(registry: RegistryService, fmt: str) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    assert registry.preview(TYPE_CODE, 1, fmt).startswith(MAGIC[fmt])
    assert registry.preview(TYPE_CODE, None, fmt, worst_case=True).startswith(MAGIC[fmt])
    unsaved = parse_type_spec(type_spec_data(code=AUTHORITY_USCC + "002"))
    assert registry.preview_unsaved(unsaved, {}, fmt).startswith(MAGIC[fmt])
    new_template = parse_template(template_data(background={"design": "red"}))
    assert registry.preview_unsaved((TYPE_CODE, new_template), {}, fmt).startswith(MAGIC[fmt])
    assert row_counts(registry)["template_version"] == 1 and len(stored_files(registry)) == 1


def test_preview_refuses_unknown_formats_and_damaged_files(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC)
    register(registry)
    with pytest.raises(InvalidRequestError, match="不支持的格式 'tiff'"):
        registry.preview(TYPE_CODE, 1, "tiff")
    digest = registry.get_template(TYPE_CODE, 1).background_sm3
    overwrite_stored(registry.filestore, digest, raw_stored(registry.filestore, digest)[:-10])
    with pytest.raises(StoredFileError, match="已损坏"):
        registry.preview(TYPE_CODE, 1, "png")


def test_departments_table_keeps_roles_as_text(registry: RegistryService) -> None:
    add_department(registry, ISSUER_USCC, ("user", "issuer"))
    with Session(registry.engine) as session:
        assert session.exec(select(DepartmentRow.roles)).one() == "issuer,user"

"""`ecas departments`, `ecas apikey` and `ecas types`: the licence-type registry from the command line.
The operator at the command line acts as administrator (recorded as `cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.actors import CLI_ACTOR, ROLES
from cert_authority.cli.support import UsageError, friendly_errors, settings_from, writable_file
from cert_authority.registry.catalogue import claim_type, load_catalogue
from cert_authority.registry.schemas import DepartmentCreate
from cert_authority.registry.service import RegistryService, registry_for
from cert_authority.registry.spec_input import MAX_DEFINITION_BYTES, load_definition, parse_template, parse_type_spec
from cert_authority.services import migrated_engine
from templates.images import MAX_UPLOAD_BYTES
from templates.layout_spec import TemplateSpec
from templates.render import FORMATS
from templates.spec import parse_model

departments_app = typer.Typer(help="部门：登记与查看颁证、用证部门", no_args_is_help=True)
apikey_app = typer.Typer(help="API 密钥：创建、查看、吊销", no_args_is_help=True)
types_app = typer.Typer(help="证照类型：登记、认领、查看、新增模板版本、预览", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON 输出")]


def _registry(ctx: typer.Context) -> RegistryService:
    settings = settings_from(ctx)
    return registry_for(settings, migrated_engine(settings))


def _api_keys(ctx: typer.Context) -> ApiKeyService:
    return ApiKeyService(migrated_engine(settings_from(ctx)))


def _print_json(items: list[BaseModel] | BaseModel) -> None:
    data: Any = [i.model_dump(mode="json") for i in items] if isinstance(items, list) else items.model_dump(mode="json")
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _read_file(path: Path, limit: int, what: str) -> bytes:
    size = path.stat().st_size  # OSError (no such file...) is reported by friendly_errors
    if size > limit:
        raise UsageError(f"{what} {path} 过大：{size / 1048576:.1f} MB，上限 {limit / 1048576:g} MB")
    return path.read_bytes()


def _load(path: Path) -> dict[str, Any]:
    return load_definition(_read_file(path, MAX_DEFINITION_BYTES, "定义文件"), path.name)


def _images(template: TemplateSpec, folder: Path) -> dict[str, bytes]:
    """The pictures a template names, read relative to the definition file's folder."""
    name = template.background.image
    if name is None:
        return {}
    return {name: _read_file(folder / name, MAX_UPLOAD_BYTES, "底图文件")}


# --- departments -------------------------------------------------------------------------------
@departments_app.command("add")
@friendly_errors
def departments_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="部门名称")],
    uscc: Annotated[str, typer.Option(help="统一社会信用代码")],
    area_code: Annotated[str, typer.Option(help="行政区划代码（6位）")],
    level: Annotated[str, typer.Option(help="层级：province、city、district")],
    roles: Annotated[str, typer.Option(help="角色，逗号分隔：issuer（颁证）、user（用证）")],
    contact: Annotated[str | None, typer.Option(help="联系人、电话等")] = None,
) -> None:
    """登记部门（颁证部门、用证部门）。"""
    data = {
        "name": name,
        "uscc": uscc,
        "area_code": area_code,
        "level": level,
        "roles": [r.strip() for r in roles.split(",") if r.strip()],
        "contact": contact,
    }
    department = _registry(ctx).create_department(parse_model(DepartmentCreate, data))
    typer.echo(f"已登记部门 {department.name}（{department.uscc}），角色：{','.join(department.roles)}")


@departments_app.command("list")
@friendly_errors
def departments_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """列出已登记的部门。"""
    departments = _registry(ctx).list_departments()
    if as_json:
        _print_json(list(departments))
        return
    for d in departments:
        typer.echo(f"{d.uscc}  {d.area_code}  {d.level:8}  {','.join(d.roles):12}  {d.name}")


# --- API keys ----------------------------------------------------------------------------------
@apikey_app.command("create")
@friendly_errors
def apikey_create(
    ctx: typer.Context,
    uscc: Annotated[str | None, typer.Option(help="密钥所属部门的统一社会信用代码")] = None,
    role: Annotated[str | None, typer.Option(help="角色：" + "、".join(r for r in ROLES if r != "admin"))] = None,
    admin: Annotated[bool, typer.Option("--admin", help="创建管理员密钥（不属于任何部门）")] = False,
) -> None:
    """创建 API 密钥：只显示这一次，系统只保存其摘要。"""
    if admin:
        if role not in (None, "admin") or uscc is not None:
            raise UsageError("--admin 不能与 --uscc 或 --role 同用")
        role = "admin"
    elif role is None:
        raise UsageError("请给出 --role（及 --uscc），或用 --admin 创建管理员密钥")
    created = _api_keys(ctx).create(role, uscc, actor=CLI_ACTOR)
    typer.echo(created.key)
    owner = f"部门 {created.department_uscc}" if created.department_uscc else "管理员"
    typer.secho(
        f"已创建 API 密钥 {created.prefix}…（{created.role}，{owner}）。密钥只显示这一次，请立即妥善保存；"
        "系统只保存其摘要，无法找回。",
        fg=typer.colors.YELLOW,
        err=True,
    )


@apikey_app.command("list")
@friendly_errors
def apikey_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """列出 API 密钥（只显示前缀，密钥本身从不保存）。"""
    keys = _api_keys(ctx).list()
    if as_json:
        _print_json(list(keys))
        return
    for k in keys:
        state = f"已吊销 {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "有效"
        typer.echo(f"{k.id:>4}  {k.prefix}…  {k.role:8}  {k.department_uscc or '-':18}  {state}")


@apikey_app.command("revoke")
@friendly_errors
def apikey_revoke(
    ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="密钥前缀（见 ecas apikey list）")]
) -> None:
    """吊销 API 密钥，立即生效。"""
    revoked = _api_keys(ctx).revoke(prefix.rstrip("…"), actor=CLI_ACTOR)
    typer.echo(f"已吊销 API 密钥 {revoked.prefix}…")


# --- licence types -----------------------------------------------------------------------------
@types_app.command("register")
@friendly_errors
def types_register(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="证照类型定义（YAML 或 JSON，含 template；底图路径相对于此文件）")],
) -> None:
    """登记证照类型及其第一版模板（YAML 或 JSON 文件）。"""
    spec = parse_type_spec(_load(file))
    images = _images(spec.template, file.parent) if spec.template else {}
    registered = _registry(ctx).register_type(spec, images, CLI_ACTOR)
    typer.echo(f"已登记证照类型 {registered.code} {registered.name}（模板第 {registered.latest_version} 版）")


@types_app.command("claim")
@friendly_errors
def types_claim(
    ctx: typer.Context,
    catalogue_file: Annotated[Path, typer.Argument(help="省级证照目录文件（YAML 或 JSON）")],
    code: Annotated[str, typer.Argument(help="要认领的证照类型代码（目录中的代码）")],
    template_file: Annotated[
        Path, typer.Option("--template", help="本部门的模板定义（YAML 或 JSON；底图路径相对于此文件）")
    ],
    issuer: Annotated[str, typer.Option(help="认领部门的统一社会信用代码")],
) -> None:
    """认领证照目录中的证照类型：沿用目录的类型代码与照面字段，加上本部门的模板和底图。"""
    catalogue = load_catalogue(_read_file(catalogue_file, MAX_DEFINITION_BYTES, "证照目录文件"), catalogue_file.name)
    template = parse_template(_load(template_file))
    images = _images(template, template_file.parent)
    claimed = claim_type(_registry(ctx), catalogue, code, issuer, template, images, CLI_ACTOR)
    typer.echo(
        f"已认领证照类型 {claimed.code} {claimed.name}（{catalogue.publisher} {catalogue.edition}），"
        f"颁发部门 {issuer}，模板第 {claimed.latest_version} 版"
    )


@types_app.command("list")
@friendly_errors
def types_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """列出已登记的证照类型。"""
    types = _registry(ctx).list_types()
    if as_json:
        _print_json(list(types))
        return
    for t in types:
        typer.echo(f"{t.code}  v{t.latest_version:<3} {t.name}（{t.defining_authority.name}）")


@types_app.command("show")
@friendly_errors
def types_show(
    ctx: typer.Context, code: Annotated[str, typer.Argument(help="证照类型代码")], as_json: JsonOption = False
) -> None:
    """查看证照类型：照面字段与各版模板。"""
    detail = _registry(ctx).get_type(code)
    if as_json:
        _print_json(detail)
        return
    typer.echo(f"{detail.code}  {detail.name}")
    typer.echo(f"定义机关：{detail.defining_authority.name}（{detail.defining_authority.uscc}）")
    typer.echo(f"颁发部门：{'、'.join(detail.issuers)}")
    typer.echo(f"颁证层级：{detail.issuer_level}  持证主体：{detail.holder_category}")
    typer.echo("照面字段：" + "、".join(f"{f['label']}（{f['key']}，{f['type']}）" for f in detail.spec["fields"]))
    for v in detail.versions:
        note = f"  {v.note}" if v.note else ""
        when = f"{v.created_at:%Y-%m-%d %H:%M}"
        typer.echo(f"  模板 v{v.version}  {when}  {v.created_by}  底图 SM3 {v.background_sm3[:16]}…{note}")


@types_app.command("add-template")
@friendly_errors
def types_add_template(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="证照类型代码")],
    file: Annotated[Path, typer.Argument(help="模板定义（YAML 或 JSON；底图路径相对于此文件）")],
) -> None:
    """为证照类型新增一版模板（旧版本不变）。"""
    template = parse_template(_load(file))
    version = _registry(ctx).add_template_version(code, template, _images(template, file.parent), CLI_ACTOR)
    typer.echo(f"已为证照类型 {code} 新增模板第 {version} 版")


@types_app.command("preview")
@friendly_errors
def types_preview(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="证照类型代码")],
    output: Annotated[Path, typer.Option("-o", "--output", help="输出文件", callback=writable_file)],
    fmt: Annotated[str, typer.Option("--format", help="格式：" + "、".join(FORMATS))] = "png",
    version: Annotated[int | None, typer.Option(help="模板版本（默认最新）")] = None,
    worst_case: Annotated[bool, typer.Option("--worst-case", help="用字段允许的最长值预览")] = False,
) -> None:
    """用样例数据渲染某版模板，写入文件（PNG、PDF 或 OFD）。"""
    data = _registry(ctx).preview(code, version, fmt, worst_case=worst_case)
    output.write_bytes(data)
    typer.echo(f"预览已写入 {output}（{len(data)} 字节）")

"""The licence-type registry: departments, licence types, their issuers and template versions.

A type is registered with its first template in one transaction; later templates are added as new
versions, never edits, because issued licences record the version they were rendered with.
Backgrounds go to the content-addressed file store before the transaction that refers to them.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, sql
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from cert_authority.actors import Actor, ensure_may_add_template, ensure_may_register
from cert_authority.errors import ConflictError, InvalidRequestError, NotFoundError
from cert_authority.registry.schemas import (
    AuthorityPublic,
    DepartmentCreate,
    DepartmentPublic,
    LicenceTypeDetail,
    LicenceTypePublic,
    TemplateVersionPublic,
)
from cert_authority.settings import Settings
from cert_authority.store.filestore import FileStore, file_store_for
from cert_authority.store.models import (
    DepartmentRow,
    ExchangeEventRow,
    LicenceTypeIssuerRow,
    LicenceTypeRow,
    TemplateVersionRow,
)
from cert_authority.store.outbox import outbox_event
from cert_authority.store.reading import reader
from cert_authority.timeutil import aware, utc_now
from templates.errors import SpecError
from templates.images import Picture
from templates.layout_spec import TemplateSpec
from templates.render import FORMATS, FontSet, build_layout, check_fits, prepare_background, render, sample_face
from templates.spec import LicenceTypeSpec, check_template

_TYPES = LicenceTypeRow.__table__  # type: ignore[attr-defined]
_VERSIONS = TemplateVersionRow.__table__  # type: ignore[attr-defined]
_DEPARTMENTS = DepartmentRow.__table__  # type: ignore[attr-defined]
# One round trip for issuing: the type's definition, its latest template version, the department.
_ISSUING_CONTEXT = (
    sql.select(
        _TYPES.c.id,
        _TYPES.c.spec_json,
        sql.select(func.max(_VERSIONS.c.version))
        .where(_VERSIONS.c.type_id == _TYPES.c.id)
        .scalar_subquery()
        .label("version"),
        *(column.label(f"department_{column.name}") for column in _DEPARTMENTS.c),
    )
    .select_from(_TYPES.outerjoin(_DEPARTMENTS, _DEPARTMENTS.c.uscc == sql.bindparam("issuer")))
    .where(_TYPES.c.code == sql.bindparam("code"))
)
VERSION_ATTEMPTS = 5  # concurrent add_template_version calls retry on the (type, version) constraint
PARSED_CACHE_SIZE = 256  # parsed definitions kept per process


@dataclass(frozen=True)
class StoredTemplate:
    """A template version as stored: its spec, parsed, and where its background is."""

    code: str
    version: int
    template: TemplateSpec
    background_sm3: str
    public: TemplateVersionPublic


def _department(row: DepartmentRow) -> DepartmentPublic:
    assert row.id is not None
    return DepartmentPublic(
        id=row.id,
        name=row.name,
        uscc=row.uscc,
        area_code=row.area_code,
        level=row.level,
        roles=row.roles.split(","),
        contact=row.contact,
        created_at=aware(row.created_at),
    )


def _joined_department(found: RowMapping) -> DepartmentPublic | None:
    """The department_* columns of a joined row (all None when no department matched)."""
    values = {key.removeprefix("department_"): value for key, value in found.items() if key.startswith("department_")}
    return _department(DepartmentRow(**values)) if values["id"] is not None else None


def _version(row: TemplateVersionRow) -> TemplateVersionPublic:
    return TemplateVersionPublic(
        version=row.version,
        note=row.note,
        background_sm3=row.background_sm3,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        template=json.loads(row.template_json),
    )


def _type(row: LicenceTypeRow, latest_version: int) -> LicenceTypePublic:
    spec = json.loads(row.spec_json)
    return LicenceTypePublic(
        code=row.code,
        name=row.name,
        defining_authority=AuthorityPublic(name=row.authority_name, uscc=row.authority_uscc),
        issuer_level=row.issuer_level,
        holder_category=row.holder_category,
        issuers=spec["issuers"],
        latest_version=latest_version,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        spec=spec,
    )


def _dump(model: Any, **kwargs: Any) -> str:
    return json.dumps(model.model_dump(mode="json", **kwargs), ensure_ascii=False, sort_keys=True)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidRequestError(f"不支持的格式 {fmt!r}，可选：{'、'.join(FORMATS)}")


def _check_images(template: TemplateSpec, images: Mapping[str, bytes]) -> None:
    referenced = {template.background.image} - {None}
    extra = sorted(set(images) - referenced)
    if extra:
        hint = f"（background.image 为 {template.background.image}）" if template.background.image else ""
        raise InvalidRequestError(f"上传了模板没有引用的文件：{'、'.join(extra)}{hint}")


class RegistryService:
    def __init__(
        self,
        engine: Engine,
        filestore: FileStore,
        fonts: FontSet | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        font_paths: tuple[Path | None, Path | None] = (None, None),
    ) -> None:
        self.engine = engine
        self.filestore = filestore
        self.clock = clock
        self._fonts = fonts
        self._font_paths = font_paths
        self._fonts_lock = threading.Lock()
        # Parsed definitions, by what they were parsed from: a template version never changes once
        # stored, and a type's definition is looked up by its current JSON text.
        self._parsed_templates: dict[tuple[int, int], StoredTemplate] = {}
        self._parsed_specs: dict[str, LicenceTypeSpec] = {}

    @property
    def fonts(self) -> FontSet:
        """Resolved on first use, so a service that never renders never needs the fonts."""
        with self._fonts_lock:
            if self._fonts is None:
                self._fonts = FontSet.from_paths(*self._font_paths)
            return self._fonts

    # --- departments ---------------------------------------------------------------------------
    def create_department(self, data: DepartmentCreate) -> DepartmentPublic:
        row = DepartmentRow(
            name=data.name,
            uscc=data.uscc,
            area_code=data.area_code,
            level=data.level,
            roles=",".join(data.roles),
            contact=data.contact,
            created_at=self.clock(),
        )
        with Session(self.engine) as session:
            existing = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc) == data.uscc)).first()
            if existing is not None:
                raise ConflictError(f"统一社会信用代码为 {data.uscc} 的部门已登记（{existing.name}）")
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise ConflictError(f"统一社会信用代码为 {data.uscc} 的部门已登记") from None
            session.refresh(row)
            return _department(row)

    def list_departments(self) -> list[DepartmentPublic]:
        with Session(self.engine) as session:
            return [_department(r) for r in session.exec(select(DepartmentRow).order_by(col(DepartmentRow.id)))]

    def get_department_by_uscc(self, uscc: str) -> DepartmentPublic:
        with Session(reader(self.engine)) as session:
            row = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc) == uscc)).first()
            if row is None:
                raise NotFoundError(f"统一社会信用代码为 {uscc} 的部门尚未登记")
            return _department(row)

    # --- licence types -------------------------------------------------------------------------
    def register_type(self, spec: LicenceTypeSpec, images: Mapping[str, bytes], actor: Actor) -> LicenceTypeDetail:
        """Register `spec` with its template as version 1 (type, issuers and version in one transaction)."""
        template = spec.template
        if template is None:
            raise SpecError(["缺少 template：登记证照类型时须同时给出第一版模板"])
        ensure_may_register(actor, spec.issuers)
        _check_images(template, images)
        with Session(self.engine) as session:
            self._ensure_new_code(session, spec.code)
            issuer_ids = self._issuer_department_ids(session, spec.issuers)
        background = prepare_background(template, images)
        check_fits(spec, template, self.fonts)
        # The file first: an unreferenced file is harmless, a record without its file is not.
        digest = self.filestore.put(background.data)
        now = self.clock()
        with Session(self.engine) as session:
            row = LicenceTypeRow(
                code=spec.code,
                name=spec.name,
                authority_name=spec.defining_authority.name,
                authority_uscc=spec.defining_authority.uscc,
                issuer_level=spec.issuer_level,
                holder_category=spec.holder.category,
                spec_json=_dump(spec, exclude={"template"}),
                created_at=now,
                created_by=actor.label,
            )
            session.add(row)
            try:
                session.flush()
                assert row.id is not None
                session.add_all(LicenceTypeIssuerRow(type_id=row.id, department_id=d) for d in issuer_ids)
                session.add(self._version_row(row.id, 1, template, digest, now, actor))
                session.add(_type_feed_event("type.registered", row, 1, now))
                session.commit()
            except IntegrityError:
                session.rollback()
                if self._code_exists(session, spec.code):  # registered meanwhile by someone else
                    raise self._duplicate(spec.code) from None
                raise
        return self.get_type(spec.code)

    def list_types(self) -> list[LicenceTypePublic]:
        with Session(self.engine) as session:
            latest = dict(
                session.exec(
                    select(TemplateVersionRow.type_id, func.max(TemplateVersionRow.version)).group_by(
                        col(TemplateVersionRow.type_id)
                    )
                ).all()
            )
            rows = session.exec(select(LicenceTypeRow).order_by(col(LicenceTypeRow.code))).all()
            return [_type(row, latest.get(row.id or 0, 0)) for row in rows]

    def get_type(self, code: str) -> LicenceTypeDetail:
        with Session(self.engine) as session:
            row = self._type_row(session, code)
            versions = [_version(v) for v in self._version_rows(session, row)]
        public = _type(row, versions[-1].version if versions else 0)
        return LicenceTypeDetail(**public.model_dump(), versions=versions)

    def type_spec(self, code: str) -> LicenceTypeSpec:
        """The stored definition of type `code` (without a template)."""
        with Session(self.engine) as session:
            row = self._type_row(session, code)
        return self._spec(row.spec_json)

    def issuing_context(
        self, connection: Connection, code: str, issuer_uscc: str
    ) -> tuple[LicenceTypeSpec, StoredTemplate, DepartmentPublic | None]:
        """What issuing a licence of type `code` by department `issuer_uscc` needs, read fresh on every
        call in one query on the caller's `connection`: the definition, the latest template and the
        department (None if unknown). Parsing is memoised by what was parsed (see _spec, _stored)."""
        found = connection.execute(_ISSUING_CONTEXT, {"code": code, "issuer": issuer_uscc}).first()
        if found is None:
            raise NotFoundError(f"证照类型 {code} 尚未登记")
        template = self._parsed_templates.get((found.id, found.version))
        if template is None:  # a version this process has not parsed yet (or none at all: 404)
            with Session(bind=connection) as session:
                type_row = session.get_one(LicenceTypeRow, found.id)
                template = self._stored(code, self._template_row(session, type_row, None))
        return self._spec(found.spec_json), template, _joined_department(found._mapping)

    def _spec(self, spec_json: str) -> LicenceTypeSpec:
        spec = self._parsed_specs.get(spec_json)
        if spec is None:
            if len(self._parsed_specs) >= PARSED_CACHE_SIZE:
                self._parsed_specs.clear()
            spec = self._parsed_specs[spec_json] = LicenceTypeSpec.model_validate_json(spec_json)
        return spec

    # --- template versions ---------------------------------------------------------------------
    def add_template_version(
        self, code: str, template: TemplateSpec, images: Mapping[str, bytes], actor: Actor
    ) -> int:
        """Store `template` as the next version of type `code`; returns the new version number."""
        spec = self.type_spec(code)
        ensure_may_add_template(actor, code, spec.issuers)
        check_template(spec, template)
        _check_images(template, images)
        background = prepare_background(template, images)
        check_fits(spec, template, self.fonts)
        digest = self.filestore.put(background.data)
        for _ in range(VERSION_ATTEMPTS):
            with Session(self.engine) as session:
                # PostgreSQL: lock the type row so concurrent adders queue here. SQLite ignores FOR
                # UPDATE but has one writer at a time; two readers of the same maximum meet at the
                # unique (type_id, version) constraint, and the loser retries with a fresh maximum.
                row = session.exec(
                    select(LicenceTypeRow).where(col(LicenceTypeRow.code) == code).with_for_update()
                ).one()
                assert row.id is not None
                latest = session.exec(
                    select(func.max(TemplateVersionRow.version)).where(col(TemplateVersionRow.type_id) == row.id)
                ).one()
                version = (latest or 0) + 1
                session.add(self._version_row(row.id, version, template, digest, self.clock(), actor))
                session.add(_type_feed_event("type.template_added", row, version, self.clock()))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
                return version
        raise ConflictError(f"证照类型 {code} 正在被同时新增模板版本，请稍后重试")

    def list_template_versions(self, code: str) -> list[TemplateVersionPublic]:
        with Session(self.engine) as session:
            return [_version(v) for v in self._version_rows(session, self._type_row(session, code))]

    def get_template(self, code: str, version: int | None = None) -> StoredTemplate:
        """Template `version` of type `code` (the latest when None)."""
        with Session(self.engine) as session:
            return self._stored(code, self._template_row(session, self._type_row(session, code), version))

    @staticmethod
    def _template_row(session: Session, row: LicenceTypeRow, version: int | None) -> TemplateVersionRow:
        """Template `version` of the type in `row` (the latest when None)."""
        query = select(TemplateVersionRow).where(col(TemplateVersionRow.type_id) == row.id)
        if version is None:
            query = query.order_by(col(TemplateVersionRow.version).desc()).limit(1)
        else:
            query = query.where(col(TemplateVersionRow.version) == version)
        found = session.exec(query).first()
        if found is None:
            raise NotFoundError(f"证照类型 {row.code} 没有第 {version} 版模板")
        return found

    def _stored(self, code: str, found: TemplateVersionRow) -> StoredTemplate:
        key = (found.type_id, found.version)
        stored = self._parsed_templates.get(key)
        if stored is None:
            if len(self._parsed_templates) >= PARSED_CACHE_SIZE:
                self._parsed_templates.clear()
            stored = self._parsed_templates[key] = StoredTemplate(
                code=code,
                version=found.version,
                template=TemplateSpec.model_validate_json(found.template_json),
                background_sm3=found.background_sm3,
                public=_version(found),
            )
        return stored

    # --- previews ------------------------------------------------------------------------------
    def preview(self, code: str, version: int | None, fmt: str, *, worst_case: bool = False) -> bytes:
        """A stored template version rendered with sample data (样例 watermark), as pdf/ofd/png."""
        _check_format(fmt)
        spec = self.type_spec(code)
        stored = self.get_template(code, version)
        background = Picture.from_jpeg(self.filestore.get(stored.background_sm3))
        return self._render(spec, stored.template, background, fmt, worst_case)

    def preview_unsaved(
        self,
        subject: LicenceTypeSpec | tuple[str, TemplateSpec],
        images: Mapping[str, bytes],
        fmt: str,
        *,
        worst_case: bool = False,
    ) -> bytes:
        """Render a type spec with its template, or a new template of a registered type; stores nothing."""
        _check_format(fmt)
        if isinstance(subject, LicenceTypeSpec):
            spec, template = subject, subject.template
            if template is None:
                raise SpecError(["缺少 template：预览须给出模板"])
        else:
            code, template = subject
            spec = self.type_spec(code)
            check_template(spec, template)
        _check_images(template, images)
        return self._render(spec, template, prepare_background(template, images), fmt, worst_case)

    def _render(
        self, spec: LicenceTypeSpec, template: TemplateSpec, background: Picture, fmt: str, worst_case: bool
    ) -> bytes:
        face = sample_face(spec, worst_case=worst_case)
        layout = build_layout(spec, template, background, face, self.fonts)
        return render(layout, self.fonts, fmt)

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _type_row(session: Session, code: str) -> LicenceTypeRow:
        row = session.exec(select(LicenceTypeRow).where(col(LicenceTypeRow.code) == code)).first()
        if row is None:
            raise NotFoundError(f"证照类型 {code} 尚未登记")
        return row

    @staticmethod
    def _version_rows(session: Session, row: LicenceTypeRow) -> list[TemplateVersionRow]:
        query = (
            select(TemplateVersionRow)
            .where(col(TemplateVersionRow.type_id) == row.id)
            .order_by(col(TemplateVersionRow.version))
        )
        return list(session.exec(query).all())

    @staticmethod
    def _version_row(
        type_id: int, version: int, template: TemplateSpec, digest: str, now: dt.datetime, actor: Actor
    ) -> TemplateVersionRow:
        return TemplateVersionRow(
            type_id=type_id,
            version=version,
            template_json=_dump(template),
            background_sm3=digest,
            note=template.note,
            created_at=now,
            created_by=actor.label,
        )

    @staticmethod
    def _code_exists(session: Session, code: str) -> bool:
        return session.exec(select(LicenceTypeRow.id).where(col(LicenceTypeRow.code) == code)).first() is not None

    def _ensure_new_code(self, session: Session, code: str) -> None:
        if self._code_exists(session, code):
            raise self._duplicate(code)

    @staticmethod
    def _duplicate(code: str) -> ConflictError:
        return ConflictError(
            f"证照类型代码 {code} 已登记；类型定义登记后不可修改，如需调整版式请新增模板版本"
            f"（ecas types add-template {code} 文件，或 POST /api/v1/licence-types/{code}/templates）"
        )

    @staticmethod
    def _issuer_department_ids(session: Session, issuers: list[str]) -> list[int]:
        """Every issuer must be a registered department with the issuer role (else 422, naming them)."""
        rows = session.exec(select(DepartmentRow).where(col(DepartmentRow.uscc).in_(issuers))).all()
        found = {row.uscc: row for row in rows}
        unknown = [uscc for uscc in issuers if uscc not in found]
        if unknown:
            raise InvalidRequestError(
                f"issuers 中的部门尚未登记：{'、'.join(unknown)}"
                "（请先登记部门：ecas departments add 或 POST /api/v1/departments）"
            )
        not_issuers = [f"{found[u].name}（{u}）" for u in issuers if "issuer" not in found[u].roles.split(",")]
        if not_issuers:
            raise InvalidRequestError(f"issuers 中的部门没有颁证（issuer）角色：{'、'.join(not_issuers)}")
        return [department_id for uscc in issuers if (department_id := found[uscc].id) is not None]


def registry_for(settings: Settings, engine: Engine) -> RegistryService:
    """The registry as the app and the CLI use it: files and fonts from the settings."""
    files = file_store_for(settings, engine)
    return RegistryService(engine, files, font_paths=(settings.font_serif, settings.font_sans))


def _type_feed_event(kind: str, row: LicenceTypeRow, version: int, now: dt.datetime) -> ExchangeEventRow:
    """The change feed's event for a licence type and its template version (`store.outbox`)."""
    payload = {
        "code": row.code,
        "name": row.name,
        "authority_name": row.authority_name,
        "authority_uscc": row.authority_uscc,
        "issuer_level": row.issuer_level,
        "holder_category": row.holder_category,
        "template_version": version,
        "spec": json.loads(row.spec_json),
    }
    return outbox_event(kind, f"type:{row.code}", payload, now)

"""The province's catalogue of licence types (证照目录) and claiming a type from it (认领).

The province publishes, per licence type, its code, name, defining authority, the level of the
departments that issue it, the holder category and code types, the validity policy and the face
fields. A department claims a type (`ecas types claim CATALOGUE_FILE CODE --template FILE`): the
type is registered with exactly the catalogue's definition, keeping its code (so the same licence
type has the same code in every city), the claiming department as issuer, and the department's
own template and base image. Nothing of the catalogue's definition can be changed on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cert_authority.actors import Actor
from cert_authority.errors import InvalidRequestError, NotFoundError
from cert_authority.registry.schemas import LicenceTypeDetail
from cert_authority.registry.service import RegistryService
from cert_authority.registry.spec_input import load_definition
from templates.errors import SpecError
from templates.layout_spec import TemplateSpec
from templates.spec import LicenceTypeSpec, parse_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CatalogueEntry(_Strict):
    """One licence type as the provincial catalogue lists it: the parts of a type definition
    (`templates.spec.LicenceTypeSpec`) but issuers and template, and the issuers' level."""

    code: str
    name: str
    defining_authority: dict[str, Any]
    level: Literal["province", "city", "district"]  # of the departments that issue it
    holder: dict[str, Any]
    validity: dict[str, Any]
    fields: list[dict[str, Any]]

    def definition(self, issuer_uscc: str, template: TemplateSpec | None = None) -> LicenceTypeSpec:
        """The type definition for `issuer_uscc`, checked as any (SpecError naming each problem)."""
        definition = self.model_dump(mode="json", exclude={"level"})
        definition |= {"issuers": [issuer_uscc], "issuer_level": self.level}
        if template is not None:
            definition["template"] = template.model_dump(mode="json", exclude_unset=True)
        return parse_model(LicenceTypeSpec, definition)


class Catalogue(_Strict):
    """A catalogue file: who published it, which edition, the types."""

    publisher: Annotated[str, Field(min_length=2, max_length=100)]
    edition: Annotated[str, Field(min_length=1, max_length=40)]
    types: Annotated[list[CatalogueEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_codes(self) -> Catalogue:
        codes = [entry.code for entry in self.types]
        duplicates = sorted({code for code in codes if codes.count(code) > 1})
        if duplicates:
            raise ValueError(f"目录中证照类型代码重复：{'、'.join(duplicates)}")
        return self

    def entry(self, code: str) -> CatalogueEntry:
        found = next((entry for entry in self.types if entry.code == code), None)
        if found is None:
            listed = "、".join(f"{entry.code}（{entry.name}）" for entry in self.types)
            raise NotFoundError(f"证照目录（{self.publisher} {self.edition}）中没有类型代码 {code}；目录中有：{listed}")
        return found


def load_catalogue(data: bytes, source: str = "证照目录") -> Catalogue:
    """Read a catalogue (YAML or JSON) and check every type in it as a definition would be
    checked at registration; SpecError names every problem, with the type's code."""
    catalogue = parse_model(Catalogue, load_definition(data, source))
    problems: list[str] = []
    for entry in catalogue.types:
        try:
            # The defining authority stands in for the issuer: a valid code, replaced on claim.
            entry.definition(str(entry.defining_authority.get("uscc", "")))
        except SpecError as exc:
            problems += [f"{entry.code}（{entry.name}）：{problem}" for problem in exc.problems]
    if problems:
        raise SpecError(problems)
    return catalogue


def claim_type(
    registry: RegistryService,
    catalogue: Catalogue,
    code: str,
    issuer_uscc: str,
    template: TemplateSpec,
    images: Mapping[str, bytes],
    actor: Actor,
) -> LicenceTypeDetail:
    """认领: register catalogue type `code` for department `issuer_uscc`, with its template."""
    entry = catalogue.entry(code)
    department = registry.get_department_by_uscc(issuer_uscc)
    if department.level != entry.level:
        raise InvalidRequestError(
            f"证照目录规定 {entry.name}（{code}）由 {entry.level} 级部门颁发，"
            f"{department.name}（{issuer_uscc}）是 {department.level} 级部门，不能认领"
        )
    return registry.register_type(entry.definition(issuer_uscc, template), images, actor)

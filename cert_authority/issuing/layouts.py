"""A licence's page layout: from checked data when it is issued, and again from its stored record
when its phone image is first asked for (`licence_images`). Both go through `layout`, so the image
shows exactly what the sealed PDF and OFD show."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from cert_authority.errors import LicenceDataError
from cert_authority.issuing.dates import Validity
from cert_authority.issuing.origin import printed_issuer
from cert_authority.registry.service import RegistryService, StoredTemplate
from cert_authority.store.filestore import FileStore
from cert_authority.store.models import LicenceRow
from templates.errors import FontError, LayoutError
from templates.identifier import LicenceIdentifier
from templates.images import Picture
from templates.layout import LicenceFace, PageLayout, build_layout
from templates.layout_spec import TemplateSpec
from templates.spec import LicenceTypeSpec, chinese_date


@dataclass(frozen=True)
class LayoutContext:
    """A licence type with one of its template versions and that version's base image."""

    spec: LicenceTypeSpec
    template_version: int
    template: TemplateSpec
    background: Picture


class LicenceLayouts:
    def __init__(self, registry: RegistryService, filestore: FileStore, base_url: str) -> None:
        self.registry = registry
        self.filestore = filestore
        self.base_url = base_url.rstrip("/")
        self._backgrounds: dict[str, Picture] = {}
        self._contexts: dict[tuple[str, int], LayoutContext] = {}
        self._lock = threading.Lock()

    def context(
        self,
        type_code: str,
        template_version: int | None = None,
        spec: LicenceTypeSpec | None = None,
        stored: StoredTemplate | None = None,
    ) -> LayoutContext:
        """Type `type_code` (whose `spec` and template the caller may have read already) with
        template `template_version` (the latest when None)."""
        if template_version is not None and spec is None and stored is None:
            # A type's definition and its template versions never change once registered: a
            # stored licence's context is read once per process (each use lays the licence out).
            key = (type_code, template_version)
            with self._lock:
                known = self._contexts.get(key)
            if known is None:
                known = self.context(type_code, template_version, self.registry.type_spec(type_code))
                with self._lock:
                    if len(self._contexts) > 256:
                        self._contexts.clear()
                    self._contexts[key] = known
            return known
        stored = stored or self.registry.get_template(type_code, template_version)
        return LayoutContext(
            spec=spec or self.registry.type_spec(type_code),
            template_version=stored.version,
            template=stored.template,
            background=self._background(stored.background_sm3),
        )

    def verification_url(self, identifier: str) -> str:
        return f"{self.base_url}/v/{identifier}"

    def layout(
        self,
        context: LayoutContext,
        values: Mapping[str, str],
        photo: Picture | None,
        validity: Validity,
        identifier: LicenceIdentifier | str,
        number: str,
        issuer_name: str,
        issue_date: dt.date,
    ) -> PageLayout:
        meta = {
            "licence_number": number,
            "identifier": str(identifier),
            "issuer_name": issuer_name,
            "issue_date": chinese_date(issue_date),
            **validity.printed(),
        }
        face = LicenceFace(values=dict(values), meta=meta, qr_url=self.verification_url(str(identifier)), photo=photo)
        try:
            return build_layout(context.spec, context.template, context.background, face, self.registry.fonts)
        except (FontError, LayoutError) as exc:
            # A value with a character no font has, or too long for its box even at the smallest
            # size: the caller's data, so 422 (never clipped, never a blank box).
            raise LicenceDataError([str(exc)]) from None

    def of_record(self, row: LicenceRow) -> PageLayout:
        """The layout of a stored licence, as it was sealed: its template version, values and dates."""
        photo = Picture.from_jpeg(self.filestore.get(row.photo_sm3)) if row.photo_sm3 else None
        return self.of_row(self.context(row.type_code, row.template_version), row, photo)

    def of_row(self, context: LayoutContext, row: LicenceRow, photo: Picture | None) -> PageLayout:
        """The layout of the licence `row` records (sealing it, or laying it out again): what is
        printed comes from the record, so the two can never differ."""
        return self.layout(
            context,
            json.loads(row.face_json),
            photo,
            Validity(row.valid_from, row.valid_until),
            row.identifier,
            row.licence_number,
            printed_issuer(row),
            row.issue_date,
        )

    def _background(self, digest: str) -> Picture:
        with self._lock:
            cached = self._backgrounds.get(digest)
        if cached is None:
            cached = Picture.from_jpeg(self.filestore.get(digest))
            with self._lock:
                self._backgrounds[digest] = cached
        return cached

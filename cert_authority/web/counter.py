"""The counter's check page (/counter, for department staff): a scan field that a scanner gun types
into (Enter submits), the camera where the browser can read barcodes, an uploaded photo of a code,
and a sealed PDF/OFD file check. Also /v/{identifier}: the public page the QR code printed on every
licence points to (status only, no personal data)."""

from __future__ import annotations

import hmac
import io
from typing import Annotated

import zxingcpp
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from PIL import Image
from sqlmodel import Session

from cert_authority.access.staff import StaffMember
from cert_authority.actors import Actor
from cert_authority.checking.licences import MAX_UPLOAD_BYTES as MAX_FILE_BYTES
from cert_authority.checking.licences import VerificationService
from cert_authority.checking.show_tokens import ShowTokenVerifier
from cert_authority.errors import NotFoundError
from cert_authority.issuing.personal import open_licence
from cert_authority.issuing.queries import LicenceQueryService
from cert_authority.issuing.records import find_licence, licence_public
from cert_authority.issuing.schemas import LicencePublic
from cert_authority.registry.service import RegistryService
from cert_authority.timeutil import local_date
from cert_authority.web.common import forget_flash, redirect, render, same_origin, take_flash, zone_of
from cert_authority.web.counter_cases import (
    LICENCE_URL,
    as_use_code,
    department_matters,
    department_open_cases,
    scanned_use_code,
)
from cert_authority.web.counter_results import RESULT_COOKIE, RESULT_PATH, recall, remember
from cert_authority.web.staff_pages import Staff
from cert_authority.web.verdicts import verdict, with_licence
from templates.errors import ImageError
from templates.images import MAX_UPLOAD_BYTES, load_picture
from verification.report import Report
from verification.show_token import PREFIX as TOKEN_PREFIX

router = APIRouter(include_in_schema=False)
Posted = Depends(same_origin)
PUBLIC = Actor(label="public", role="public")
MAX_PHOTO_SIDE = 2400  # larger photos are scaled down first: a QR code needs no more


def _verification(request: Request) -> VerificationService:
    service: VerificationService = request.app.state.verification
    return service


def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


@router.get("/counter")
def counter_page(request: Request, staff: Staff) -> Response:
    page = render(
        request, "counter/scan.html", staff=staff, matters=department_matters(request, staff),
        open_cases=department_open_cases(request, staff), flash=take_flash(request),
    )
    return forget_flash(page, request)


@router.post("/counter/check", dependencies=[Posted])
def check_code(request: Request, staff: Staff, code: Annotated[str, Form(max_length=4000)]) -> Response:
    """What a scanner gun or a person typed: a show token, a licence's QR address, an identifier, or
    a holder's use code (on to the use form)."""
    use_code = as_use_code(code)
    if use_code is not None:
        return scanned_use_code(use_code)
    return _result(request, staff, _check_text(request, staff.actor(), code))


@router.post("/counter/image", dependencies=[Posted])
def check_image(request: Request, staff: Staff, image: Annotated[UploadFile, File()]) -> Response:
    """A photo or screenshot of a code (for counters without a scanner)."""
    data = image.file.read(MAX_UPLOAD_BYTES + 1)
    try:
        # The licence images' own checks: PNG or JPEG only (no PostScript through Ghostscript, no
        # exotic decoders), the size from the header before decoding, bombs refused.
        picture = load_picture(data, "二维码图片", max_side=MAX_PHOTO_SIDE)
    except ImageError as exc:
        return _scan_error(request, staff, f"{exc}：请上传 PNG 或 JPEG 格式的照片或截图", 422)
    with Image.open(io.BytesIO(picture.data)) as decoded:
        found = zxingcpp.read_barcodes(decoded.convert("L"))
    if not found:
        return _scan_error(request, staff, "图片中没有找到二维码：请对准二维码重新拍摄，或直接扫码", 422)
    return _result(request, staff, _check_text(request, staff.actor(), found[0].text))


@router.post("/counter/file", dependencies=[Posted])
def check_file(request: Request, staff: Staff, file: Annotated[UploadFile, File()]) -> Response:
    """A sealed licence file (PDF or OFD) someone brought or sent."""
    data = file.file.read(MAX_FILE_BYTES + 1)
    return _result(request, staff, _verification(request).verify_file(data))


@router.get("/v/{identifier}")
def public_check(identifier: str, request: Request) -> Response:
    """Where the QR code on a printed licence leads: is this licence genuine and valid now?"""
    report = _verification(request).verify_identifier(PUBLIC, identifier)
    return render(request, "counter/public.html", verdict=verdict(report, _registry(request), zone_of(request)))


def _check_text(request: Request, actor: Actor, text: str) -> Report:
    text = text.strip()
    if text.startswith(TOKEN_PREFIX + "."):
        verifier: ShowTokenVerifier = request.app.state.show_tokens
        return verifier.verify(actor, text)
    address = LICENCE_URL.search(text)
    return _verification(request).verify_identifier(actor, address.group(1) if address else text)


@router.get("/counter/result")
def result_page(request: Request, staff: Staff) -> Response:
    """The last check's verdict (a reload shows it again instead of checking the code twice)."""
    found = recall(request, staff)
    if found is None:
        return redirect("/counter")
    return render(request, "counter/scan.html", staff=staff, verdict=found, matters=department_matters(request, staff))


@router.get("/counter/result/photo/{sm3}")
def result_photo(sm3: str, request: Request, staff: Staff) -> Response:
    """The holder's photo beside the last accepted show code's verdict, and nothing else: the digest
    must be the one in this counter's signed verdict cookie (set when the code was accepted)."""
    found = recall(request, staff)
    if found is None or found.result != "VALID" or not found.photo or not hmac.compare_digest(found.photo, sm3):
        raise NotFoundError("没有可显示的持证人照片")
    data = _registry(request).filestore.get(found.photo)
    media_type = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, no-store"})


def _shown_licence(request: Request, report: Report) -> LicencePublic | None:
    """The licence behind a show code whose signature and record checked out (the holder showed it
    at this counter), for its status, issuer and photo; None for anything else."""
    subject = report.subject
    if subject.get("kind") != "show_token" or not subject.get("name") or not subject.get("identifier"):
        return None
    queries: LicenceQueryService = request.app.state.licences
    with Session(queries.engine) as session:
        row = find_licence(session, str(subject["identifier"]))
    return licence_public(open_licence(queries.personal, row), local_date(queries.clock()))


def _result(request: Request, staff: StaffMember, report: Report) -> Response:
    found = with_licence(verdict(report, _registry(request), zone_of(request)), _shown_licence(request, report))
    response = redirect("/counter/result")
    if remember(request, response, found, staff):
        return response
    page = render(request, "counter/scan.html", staff=staff, verdict=found, matters=department_matters(request, staff))
    page.delete_cookie(RESULT_COOKIE, path=RESULT_PATH)  # the verdict before this one is not this one
    return page


def _scan_error(request: Request, staff: StaffMember, message: str, status: int) -> Response:
    matters = department_matters(request, staff)
    return render(request, "counter/scan.html", status, staff=staff, error=message, matters=matters)

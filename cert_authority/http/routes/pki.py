"""Publication endpoints of the branch CA: certificates, CRLs (RFC 5280) and OCSP (RFC 6960).

These are public on purpose: any relying party, without an account, must be able to check a
seal certificate's status. They reveal nothing but what certificates and CRLs already publish.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError

from cert_authority.pki.service import PkiService
from cert_authority.pki.trust_bundle import trust_bundle
from keys.ocsp import ocsp_error_response

router = APIRouter(prefix="/pki", tags=["pki"])

OCSP_MAX_REQUEST = 64 * 1024
CACHE_SHORT = "max-age=300, public"


def _pki(request: Request) -> PkiService:
    pki: PkiService = request.app.state.pki
    return pki


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@router.get("/root.pem", response_class=Response)
def root_pem(request: Request) -> Response:
    """The provincial root certificate (PEM)."""
    return Response(_pki(request).root_certificate().pem, media_type="application/x-pem-file")


@router.get("/branch.pem", response_class=Response)
def branch_pem(request: Request) -> Response:
    """The municipal branch CA certificate (PEM)."""
    return Response(_pki(request).branch_certificate().pem, media_type="application/x-pem-file")


@router.get("/branch.cer", response_class=Response)
def branch_cer(request: Request) -> Response:
    """The branch CA certificate in DER (the AIA caIssuers URL of seal certificates)."""
    return Response(_pki(request).branch_certificate().der, media_type="application/pkix-cert")


@router.get("/crl", response_class=Response)
def branch_crl(request: Request) -> Response:
    """The branch CA's current CRL (DER), re-issued on every revocation."""
    return Response(
        _pki(request).current_crl(_now()),
        media_type="application/pkix-crl",
        headers={"Cache-Control": CACHE_SHORT},
    )


@router.get("/trust-bundle.json", response_class=Response)
def branch_trust_bundle(request: Request) -> Response:
    """The signed trust bundle for offline verifiers: root, branch and service certificates, current CRL."""
    return Response(
        trust_bundle(_pki(request), _now()), media_type="application/json", headers={"Cache-Control": CACHE_SHORT}
    )


@router.get("/root.crl", response_class=Response)
def root_crl(request: Request) -> Response:
    """The root CA's CRL (DER), when this deployment runs the root."""
    return Response(_pki(request).root_crl(), media_type="application/pkix-crl")


def _ocsp(request: Request, body: bytes) -> Response:
    try:
        answer = _pki(request).ocsp_response(body, _now())
    except OperationalError:
        # RFC 6960 §2.3: OCSP clients understand tryLater, not an HTTP error page.
        answer = ocsp_error_response("try_later")
    return Response(answer, media_type="application/ocsp-response", headers={"Cache-Control": "no-cache"})


@router.post("/ocsp", response_class=Response)
async def ocsp_post(request: Request) -> Response:
    """OCSP over POST (RFC 6960 A.1): body is a DER OCSPRequest."""
    body = await request.body()
    if len(body) > OCSP_MAX_REQUEST:
        body = b""  # answered as malformedRequest by the responder
    return _ocsp(request, body)


@router.get("/ocsp/{encoded:path}", response_class=Response)
def ocsp_get(request: Request, encoded: str) -> Response:
    """OCSP over GET (RFC 6960 A.1): base64 of the DER request, URL-encoded, in the path."""
    try:
        body = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        body = b""
    return _ocsp(request, body[:OCSP_MAX_REQUEST])

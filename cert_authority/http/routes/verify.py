"""/api/v1/verify: check an uploaded sealed PDF or OFD (the raw file as the request body), or a
licence identifier. Any department with an API key may verify; the answer is a report (200) whatever
the verdict, so clients branch on `result` and `reason`, never on the HTTP status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cert_authority.actors import Actor
from cert_authority.boundary import ErrorPublic
from cert_authority.checking.licences import VerificationService
from cert_authority.http.auth import current_actor
from cert_authority.http.uploads import binary_body

router = APIRouter(
    prefix="/api/v1/verify",
    tags=["verification"],
    dependencies=[Depends(current_actor)],
    responses={
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        413: {"model": ErrorPublic, "description": "文件过大（上限 20 MB）"},
    },
)
Caller = Annotated[Actor, Depends(current_actor)]


class CheckPublic(BaseModel):
    name: Annotated[
        str,
        Field(
            description="integrity、signature、seal、timestamp、chain、revocation、status、record、log、identifier、file"
        ),
    ]
    status: Literal["VALID", "INVALID", "INDETERMINATE"]
    reason: Annotated[str, Field(description="机读原因：ok 表示通过")]
    message: str


class VerificationPublic(BaseModel):
    result: Annotated[Literal["VALID", "INVALID", "INDETERMINATE"], Field(description="总体结论")]
    reason: Annotated[str, Field(description="决定结论的检查的机读原因，如 digest_mismatch、revoked、not_found")]
    message: str
    checked_at: str | None
    subject: dict[str, Any]
    face_data: Annotated[dict[str, str] | None, Field(description="照面信息：仅在 VALID 且调用方可查看时返回")]
    checks: list[CheckPublic]


def _service(request: Request) -> VerificationService:
    service: VerificationService = request.app.state.verification
    return service


@router.post(
    "",
    response_model=VerificationPublic,
    openapi_extra=binary_body("application/pdf", "application/ofd"),
)
async def verify_file(request: Request, _caller: Caller) -> JSONResponse:
    """Verify a sealed PDF or OFD sent as the request body."""
    data = await request.body()
    # Parsing and checking a file is CPU work: off the event loop, so one upload blocks no one else.
    report = await run_in_threadpool(_service(request).verify_file, data)
    return _answer(report.to_dict())


@router.get("/{identifier}", response_model=VerificationPublic)
async def verify_identifier(identifier: str, request: Request, caller: Caller) -> JSONResponse:
    """Verify a licence by its identifier (证照标识); in province mode also the cities' licences."""
    return _answer(await run_in_threadpool(_by_identifier, request, caller, identifier))


def _by_identifier(request: Request, caller: Actor, identifier: str) -> dict[str, Any]:
    report = _service(request).verify_identifier(caller, identifier)
    if report.reason == "not_found":
        report = request.app.state.province.verify_identifier(caller, identifier) or report
    return report.to_dict()


def _answer(report: dict[str, Any]) -> JSONResponse:
    """The report as it is: Report.to_dict has VerificationPublic's fields, so FastAPI's check of
    the answer against the model (in a worker thread, for every call) is skipped."""
    return JSONResponse(report)

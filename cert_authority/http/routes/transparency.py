"""The transparency log, published: signed tree heads, consistency proofs and tiles are public
(like CRLs: anyone may witness the log), a licence's inclusion proof is for API callers.

    GET /log/head[?size=N]                  the latest signed tree head (or the kept head of size N)
    GET /log/checkpoint                     the latest head as a C2SP signed note
    GET /log/consistency?from=N&to=M        RFC 9162 consistency proof between two tree sizes
    GET /log/tile/<L>/<N>[.p/<W>]           hash tiles (C2SP tlog-tiles)
    GET /log/tile/entries/<N>[.p/<W>]       entry bundles: the leaves themselves
    GET /api/v1/licences/{identifier}/proof inclusion proof(s) of a licence's leaves
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from cert_authority.boundary import ErrorPublic
from cert_authority.errors import InvalidRequestError, NotFoundError
from cert_authority.http.auth import current_actor
from cert_authority.transparency.log import TransparencyLog, licence_proofs
from cert_authority.transparency.tiles import TileError, parse_tile_path
from verification.transparency import SignedTreeHead

router = APIRouter(prefix="/log", tags=["transparency"])
api_router = APIRouter(
    prefix="/api/v1",
    tags=["transparency"],
    dependencies=[Depends(current_actor)],
    responses={
        401: {"model": ErrorPublic, "description": "缺少、无效或已吊销的 API 密钥"},
        404: {"model": ErrorPublic, "description": "证照未记入透明日志"},
    },
)
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=5"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic, "description": "树头、树的大小或瓦片不存在"}}


def _log(request: Request) -> TransparencyLog:
    log: TransparencyLog = request.app.state.transparency_log
    return log


def _latest(log: TransparencyLog) -> SignedTreeHead:
    head = log.latest_head()
    if head is None:
        raise NotFoundError("透明日志尚无签名树头（还没有记录任何证照事件）")
    return head


@router.get("/head", responses=NOT_FOUND)
def signed_head(request: Request, size: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> JSONResponse:
    """The latest signed tree head, or the head of `size` leaves (every head is kept)."""
    log = _log(request)
    head = _latest(log) if size is None else log.head_at(size)
    if head is None:
        raise NotFoundError(f"没有大小为 {size} 的签名树头")
    return JSONResponse(log.published(head), headers={"Cache-Control": SHORT if size is None else IMMUTABLE})


@router.get("/checkpoint", response_class=Response, responses=NOT_FOUND)
def checkpoint(request: Request) -> Response:
    """The latest head as a C2SP signed note (tlog-tiles' `checkpoint`)."""
    log = _log(request)
    note = log.published(_latest(log))["checkpoint"]
    return Response(note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": SHORT})


@router.get("/consistency", responses={**NOT_FOUND, 422: {"model": ErrorPublic, "description": "from、to 超出范围"}})
def consistency(
    request: Request,
    first: Annotated[int, Query(alias="from", ge=1, le=2**62)],
    second: Annotated[int, Query(alias="to", ge=1, le=2**62)],
) -> dict[str, Any]:
    """RFC 9162 consistency proof between the trees of `from` and `to` leaves (base64 hashes)."""
    log = _log(request)
    size = _latest(log).tree_size
    if not first <= second <= size:
        raise InvalidRequestError(f"from、to：应满足 1 ≤ from ≤ to ≤ {size}（当前树的大小）")
    hashes = log.consistency(first, second)
    return {"from": first, "to": second, "hashes": [base64.b64encode(h).decode() for h in hashes]}


@router.get("/tile/{path:path}", response_class=Response, responses=NOT_FOUND)
def tile(request: Request, path: str) -> Response:
    """A hash tile or an entry bundle (C2SP tlog-tiles), as the latest head's tree has it."""
    log = _log(request)
    try:
        level, index, width = parse_tile_path(path)
    except TileError as exc:
        raise NotFoundError(f"瓦片路径无效：{exc}") from None
    size = _latest(log).tree_size
    data = log.entry_bundle(index, width, size) if level == "entries" else log.tile(int(level), index, width, size)
    if data is None:
        raise NotFoundError("当前的树中没有这个瓦片")
    # A path names fixed bytes (a partial tile is named by its width): cacheable for good.
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})


@api_router.get("/licences/{identifier}/proof")
async def licence_proof(request: Request, identifier: str) -> dict[str, Any]:
    """Inclusion proof of the licence version's leaf under the latest signed head (RFC 9162, SM3):
    `leaf_index`, `tree_size`, `leaf`, `hashes` (leaf to root), `root_hash`, `signed_head`; and
    `events`: every leaf logged for it (issue or change, then revoke or cancel) with its proof;
    `record_salt` opens a format-2 leaf's record commitment (docs/transparency-log.md)."""
    log = _log(request)
    proofs = await run_in_threadpool(licence_proofs, log, identifier)
    if not proofs:
        raise NotFoundError(f"证照 {identifier} 未记入透明日志")
    _, first = proofs[0]
    head = await run_in_threadpool(log.published, first.head)
    salt = request.app.state.verification.personal.record_salt(identifier)
    return {
        "identifier": identifier,
        **first.to_json(),
        "record_salt": base64.b64encode(salt).decode(),
        "signed_head": head,
        "events": [{"event": event, **proof.to_json()} for event, proof in proofs],
    }

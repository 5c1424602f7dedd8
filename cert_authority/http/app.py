"""The FastAPI application, built by `create_app(settings)` (no globals: tests build many)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cert_authority.access.apikeys import ApiKeyService
from cert_authority.access.denials import record_denial
from cert_authority.access.staff import StaffAccounts
from cert_authority.boundary import ErrorPublic, classify
from cert_authority.errors import ServiceError
from cert_authority.exchange.feed import ChangeFeed
from cert_authority.exchange.province import ProvinceLibrary
from cert_authority.http.log_sequencer import log_sequencer
from cert_authority.http.middleware.body_limit import MB, BodyLimit
from cert_authority.http.middleware.rate_limit import Limits, RateLimit, request_counter
from cert_authority.http.middleware.security_headers import SecurityHeaders
from cert_authority.http.middleware.show_token_lane import ShowTokenLane
from cert_authority.http.middleware.transport import TransportCheck
from cert_authority.http.routes import cases as routes_cases
from cert_authority.http.routes import exchange as routes_exchange
from cert_authority.http.routes import holder as routes_holder
from cert_authority.http.routes import licences as routes_licences
from cert_authority.http.routes import pki as routes_pki
from cert_authority.http.routes import registry as routes_registry
from cert_authority.http.routes import seals as routes_seals
from cert_authority.http.routes import sharing as routes_sharing
from cert_authority.http.routes import stats as routes_stats
from cert_authority.http.routes import transparency as routes_transparency
from cert_authority.http.routes import tsa as routes_tsa
from cert_authority.http.routes import verify as routes_verify
from cert_authority.http.uploads import definition_schemas
from cert_authority.issuing.batch_jobs import BatchJobs
from cert_authority.pki.service import PkiService
from cert_authority.registry.service import registry_for
from cert_authority.services import licence_services_for
from cert_authority.settings import Settings, load_settings
from cert_authority.store.data_keys import open_keys_early
from cert_authority.store.db import open_database
from cert_authority.store.personal import personal_data_for
from cert_authority.web.common import PAGE_PREFIXES, is_page, page_error, wants_html
from cert_authority.web.pages import include_pages
from cert_authority.web.routing import add_routes
from keys.errors import KeysError
from seals.errors import SealError
from templates.errors import TemplateError
from templates.spec import problem_text

log = logging.getLogger("ecas")
# What callers hear of a server-side failure (the details go to the log).
OPERATOR_MESSAGES = {
    "database_unavailable": "数据库暂不可用，请稍后重试",
    "storage_unavailable": "文件存储暂不可写（磁盘已满或只读），本次未保存任何内容，请联系管理员",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    engine = open_database(settings)
    open_keys_early(settings)
    app = FastAPI(
        title="ECAS 电子证照与电子印章服务",
        version="0.1.0",
        description="E-licence and e-seal authority: SM2 PKI, sealed licences, verification.",
        responses={429: {"model": ErrorPublic, "description": "请求过于频繁（每分钟限次），见 Retry-After"}},
        docs_url=None,  # served by the pages from the package's own files (no CDN): web.pages
        redoc_url=None,
        lifespan=log_sequencer,
    )
    app.state.settings = settings
    app.state.pki = PkiService(settings, engine)
    app.state.api_keys = ApiKeyService(engine)
    app.state.staff = StaffAccounts(engine, origin=settings.base_url)
    app.state.registry = registry_for(settings, engine)
    services = licence_services_for(app.state.pki, app.state.registry)
    app.state.seals = services.seals
    app.state.issuance = services.issuance
    app.state.lifecycle = services.lifecycle
    app.state.licences = services.queries
    app.state.verification = services.verification
    app.state.holders = services.holders
    app.state.show_tokens = services.show_tokens
    app.state.sharing = services.sharing
    app.state.matters = services.matters
    app.state.duty_rules = services.duty_rules
    app.state.authorisations = services.authorisations
    app.state.cases = services.cases
    app.state.stats = services.stats
    app.state.tsa = services.timestamps
    app.state.feed = ChangeFeed(engine, personal_data_for(settings))
    app.state.province = ProvinceLibrary(engine, app.state.registry.filestore, services.verification.personal)
    app.state.transparency_log = services.log
    app.state.batch_jobs = BatchJobs(engine, app.state.registry.filestore, services.issuance)
    # Liveness first: it is what `ecas bench serve` measures as "the server doing nothing", so it must
    # not pay for matching the other 150 routes (about 150 µs here) that no other request pays.
    @app.get("/healthz", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    # Then the busiest routes: requests are matched against the routes in order.
    for router in (
        routes_holder.verify_router,
        routes_verify.router,
        routes_licences.router,
        routes_cases.router,
        routes_pki.router,
        routes_tsa.router,
        routes_registry.router,
        routes_seals.router,
        routes_holder.holder_router,
        routes_sharing.router,
        routes_stats.router,
        routes_exchange.feed_router,
        routes_exchange.province_router,
        routes_exchange.province_files_router,
        routes_transparency.router,
        routes_transparency.api_router,
    ):
        add_routes(app, router)
    include_pages(app)
    app.add_middleware(BodyLimit, skip=PAGE_PREFIXES)
    # Pages: a sealed file of up to 20 MB to check at the counter, in a multipart form.
    app.add_middleware(BodyLimit, prefix=PAGE_PREFIXES, upload_limit=21 * MB, path_limits={})
    app.add_middleware(ShowTokenLane, service=app)
    # Outermost: a client over its limit is refused before its body is read.
    limits = Limits(settings.rate_limit_per_key, settings.rate_limit_per_address)
    app.state.request_counter = request_counter(engine)
    app.add_middleware(
        RateLimit,
        counter=app.state.request_counter,
        limits=limits,
        known_key=lambda key: app.state.api_keys.remembered(key) is not None,
    )
    # Behind the TLS/TLCP front: what did not come through it is refused before anything else.
    app.add_middleware(
        TransportCheck,
        require_https=settings.base_url.startswith("https://"),
        cipher_header=settings.tls_cipher_header,
        ciphers=frozenset(settings.tls_ciphers),
    )
    app.add_middleware(SecurityHeaders, page_prefixes=PAGE_PREFIXES)  # outermost: on refusals too
    _document_definitions(app)

    @app.exception_handler(ServiceError)
    @app.exception_handler(KeysError)
    @app.exception_handler(SealError)
    @app.exception_handler(TemplateError)
    async def known_error(request: Request, exc: Exception) -> Response:
        status, code = classify(exc) or (500, "internal_error")
        message = str(exc)
        if status >= 500:
            # The detail is for operators' logs; users get a message without internals.
            log.error("request failed: %s: %s", type(exc).__name__, exc)
            message = OPERATOR_MESSAGES.get(code, "服务内部错误，请联系管理员")
        if status in (401, 403) and request.url.path.startswith("/api/"):
            actor = getattr(request.state, "actor", None)
            await run_in_threadpool(record_denial, engine, actor, request.method, request.url.path, status, code)
        if is_page(request):
            return page_error(request, status, message)
        # RFC 9110 §11.6.1: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # A fault of ours: the trace goes to the log under an id the caller can quote; the caller
        # hears nothing of the internals.
        error_id = uuid.uuid4().hex[:12]
        log.error("unexpected error %s in %s %s", error_id, request.method, request.url.path, exc_info=exc)
        message = f"服务内部错误，请联系管理员（错误编号 {error_id}）"
        if is_page(request):
            return page_error(request, 500, message)
        return JSONResponse({"error": "internal_error", "message": message, "error_id": error_id}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page(request) or wants_html(request):  # an unknown page, say: an error page, not JSON
            return page_error(request, exc.status_code, "页面不存在" if exc.status_code == 404 else str(exc.detail))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        message = "请求数据有误：" + "；".join(_describe(error) for error in exc.errors())
        if is_page(request):
            return page_error(request, 422, message)
        return JSONResponse({"error": "invalid_request", "message": message}, status_code=422)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # The database refused a value the checks let through (a NUL character, a number out of
        # its range): the request's fault, and nothing was stored.
        log.warning("value refused by the database: %s", type(exc.orig).__name__)
        message = "请求数据有误：含有不能保存的字符或数值（例如 NUL 字符）"
        if is_page(request):
            return page_error(request, 422, message)
        return JSONResponse({"error": "invalid_request", "message": message}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc.orig)
        if is_page(request):
            return page_error(request, 503, "数据库暂不可用，请稍后重试")
        return JSONResponse(
            {"error": "database_unavailable", "message": "数据库暂不可用，请稍后重试"}, status_code=503
        )

    return app


def _describe(error: dict[str, Any]) -> str:
    """One validation problem as `where：what` (pydantic puts our validators' text in ctx.error)."""
    location: Sequence[Any] = error.get("loc", ())
    where = ".".join(str(part) for part in location if part not in ("body", "query", "path")) or "请求体"
    return f"{where}：{problem_text(error)}"


def _document_definitions(app: FastAPI) -> None:
    """Add the LicenceTypeSpec, TemplateSpec and MatterSpec schemas to the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definition_schemas())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]

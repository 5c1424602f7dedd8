"""The OpenAPI document is valid OpenAPI (checked by openapi-spec-validator, not by us) and covers
every API endpoint the app serves, each with a description and its error answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from openapi_spec_validator import validate

from cert_authority.http.app import create_app
from cert_authority.settings import Settings


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI wraps those since 0.120)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and inner is not route:
            yield from api_routes(getattr(inner, "routes", []))


def test_openapi_is_valid_and_complete(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "var", kek="test-passphrase"))  # type: ignore[arg-type]
    document = app.openapi()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    served = {
        (route.path.replace(":path}", "}"), method.lower())  # path converters are not in OpenAPI paths
        for route in api_routes(app.routes)
        if route.include_in_schema  # the web pages (/wallet, /counter, /console) are not API
        for method in route.methods
    }
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert served == documented
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
            if path.startswith("/api/v1/"):
                codes = set(operation["responses"])
                assert codes & {"200", "201"}, (method, path)
                assert codes & {"401", "403", "404", "409", "422"}, (method, path)

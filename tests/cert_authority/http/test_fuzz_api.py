"""Property-based fuzzing of the whole OpenAPI surface with schemathesis (an implementation we did
not write generates the requests from our schema): no 5xx, no stack traces, and every answer's
status documented for its operation. The budget is bounded so CI stays quick."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from cert_authority.http.app import create_app
from tests.conftest import FOOD_TYPE, ISSUER_USCC, LicenceEnv, example_data, table_counts


@schemathesis.serializer("application/pdf", "application/ofd", "application/timestamp-query")
def _file_body(_context: Any, value: Any) -> bytes:
    """Files to verify or seal, and time-stamp requests, are sent as the raw body (the schema
    says: a binary string)."""
    return value if isinstance(value, bytes) else str(value).encode()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


EXAMPLES = 25  # per operation: about 60 operations, some 1,500 requests per database


@pytest.mark.slow  # schemathesis, 25 requests per operation
def test_no_server_errors_and_only_documented_statuses(shared_licence_env: LicenceEnv) -> None:
    app = create_app(shared_licence_env.settings)
    admin = {"Authorization": f"Bearer {app.state.api_keys.create('admin', None).key}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def fuzz(case: Any) -> None:
            response = case.call(headers=admin)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
            assert b"Traceback" not in response.content

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {_describe(exc)}"[:3000])
    assert not failures, "\n\n".join(failures)


def test_a_nul_character_is_refused_not_a_server_error(shared_licence_env: LicenceEnv) -> None:
    app = create_app(shared_licence_env.settings)
    issuer = {"Authorization": f"Bearer {app.state.api_keys.create('issuer', ISSUER_USCC).key}"}
    before = table_counts(shared_licence_env.engine)
    with TestClient(app) as client:
        login = client.post("/api/v1/holder/login", json={"holder_code": "\x00", "password": "x"})
        assert login.status_code == 422
        data = {**example_data(FOOD_TYPE), "operator_name": "好味道\x00餐饮"}
        issued = client.post("/api/v1/licences", json={"type_code": FOOD_TYPE, "data": data}, headers=issuer)
        assert issued.status_code == 422, issued.text
        use = client.post("/api/v1/duty-rules", json={"department_uscc": "\x00", "type_code": FOOD_TYPE},
                          headers=issuer)
        assert use.status_code == 403  # an issuer may not grant duty rules: refused before the body is looked at
    after = table_counts(shared_licence_env.engine)
    assert after == {**before, "audit_event": before["audit_event"] + 1}  # only the refusal, audited

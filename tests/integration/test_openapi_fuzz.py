"""Property-based tests of the whole management API against its own OpenAPI document.

Schemathesis generates requests from the document (valid and invalid) and checks every
answer: no 5xx, and status codes, content types and bodies as the document says.
(Driven through Hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.)
"""

from __future__ import annotations

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from control.app import OPERATIONS, create_app
from control.settings import ControlSettings
from tests.integration.conftest import Seed

ROUTES = sorted({(op.method, op.path) for op in OPERATIONS})


class NoTxtRecords:
    async def txt(self, name: str) -> list[str]:
        return []


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_api_answers_as_documented(
    method: str, path: str, control_settings: ControlSettings, seed: Seed
) -> None:
    # Rate limits off: hundreds of generated requests would otherwise meet 429 (documented,
    # but it would hide every other answer).
    app = create_app(
        msgspec.structs.replace(control_settings, rate_limit_per_minute=0), resolver=NoTxtRecords()
    )
    operation = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: schemathesis.Case) -> None:
        # In the case itself (not as extra headers) so the auth probe can take it away again.
        case.headers = {**(case.headers or {}), "Authorization": seed.alice.auth["authorization"]}
        # Not checked: "schema-valid data is accepted". The API refuses values the schema
        # cannot express (an unknown domain, a reserved slug) with a documented 422 problem.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()

"""A bounded schemathesis run of the served OpenAPI schema: no 5xx, every answer matches the schema."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schemathesis.serializer("application/jsonlines", "text/csv")
def _text_body(ctx, value):
    # The schema documents these bodies as text; negative generation may still produce other values.
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(scope="module")
def api(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
def test_fuzzed_requests_get_no_5xx_and_match_the_schema(api, mode):
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/ping", "/execution-parameters", "/invocations"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing to break in a GET without parameters

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            case.call_and_validate(checks=CHECKS)

        check()


def _far_state(state, spec):
    """A readable state no detector has seen: every non-setpoint raw tag a detector reads at the
    top of its valid range."""
    read = {f for detector in spec.detectors.values() for f in detector.features}
    far = dict(state)
    for tag in read & set(state) - set(spec.setpoints):
        far[tag] = spec.tags[tag].valid[1]
    return far


def test_every_kind_of_answer_matches_the_schema(api, good_states, loaded_bundle):
    """Recommended or hold, blocked, and a per-record error: each validated against /openapi.json,
    which forbids undocumented fields."""
    invocations = api["/invocations"]["POST"]
    blocked = _far_state(good_states[1], loaded_bundle.spec)
    unreadable = {**good_states[2], sorted(good_states[2])[0]: "n/a"}
    statuses = []
    for body in (
        {"state": good_states[0]},
        {"state": blocked},
        {"instances": [*good_states[:3], blocked, unreadable]},
    ):
        case = invocations.Case(body=body, media_type="application/json")
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code == 200
        answer = response.json()
        statuses += [item["status"] for item in answer.get("predictions", [answer])]
    assert {"blocked", "error"} <= set(statuses)
    assert set(statuses) & {"recommended", "hold"}

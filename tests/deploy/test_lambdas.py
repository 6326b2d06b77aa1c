"""Lambda handlers: event parsing into the steps' typed inputs (the moto runs cover the steps themselves)."""

from __future__ import annotations

import pytest

from deploy import lambdas, steps
from dragon.errors import DragonError


def test_parse_input_keeps_declared_fields_and_ignores_the_rest():
    event = {
        "plant_name": "yet-dragon",
        "env": "dev",
        "version": "3",
        "poll_seconds": 30,
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": "arn:aws:states:us-east-1:1:execution:t:x",
    }
    parsed = lambdas.parse_input(steps.ResolveInput, event)
    assert parsed == steps.ResolveInput("yet-dragon", "dev", "3")


def test_parse_input_names_missing_fields():
    with pytest.raises(DragonError, match="EvaluateInput: the event lacks candidate_bundle_uri, env"):
        lambdas.parse_input(steps.EvaluateInput, {"plant_name": "yet-dragon"})


def test_approval_handler_refuses_an_unknown_action():
    with pytest.raises(DragonError, match="action must be"):
        lambdas.approval_handler({"action": "maybe"})


def test_record_failure_handler_returns_json(registry_home):
    import json

    out = lambdas.record_failure_handler(
        {"plant_name": "yet-dragon", "env": "dev", "error": "E", "cause": "c"}
    )
    assert json.loads(json.dumps(out))["deployed_version"] is None


@pytest.mark.parametrize(
    "handler", [lambdas.endpoint_stack_handler, lambdas.deployment_lock_handler], ids=lambda h: h.__name__
)
def test_stack_and_lock_handlers_refuse_an_unknown_action(handler, aws_env):
    event = {"plant_name": "p", "env": "dev", "lock_table": "t", "execution_arn": "arn", "action": "maybe"}
    with pytest.raises(DragonError, match="action must be"):
        handler(event)


def test_a_version_without_an_s3_model_is_not_deployed():
    from deploy.endpoint_stack import EndpointStackError, StackRequest, deploy_stack

    request = StackRequest("p", "dev", "3", model_data_url="/tmp/bundle")
    with pytest.raises(EndpointStackError, match="model_data_url must be an s3:// model.tar.gz"):
        deploy_stack(request, cloudformation=None)


def test_batch_output_names_a_line_that_is_not_an_answer():
    from deploy.batch_output import answers_csv
    from dragon.errors import DataError

    good = '{"status": "error", "record": 0, "errors": ["ph: missing"]}'
    text, rows = answers_csv(good + "\n" + good.replace('"record": 0', '"record": 1') + "\n", "x.out")
    assert rows == 2 and text.count("status,record,errors") == 1
    with pytest.raises(DataError, match="s3://b/out/x.out: line 2 is not an answer"):
        answers_csv(good + "\nnot json\n", "s3://b/out/x.out")

"""Linters over the AWS artefacts: statelint on every ASL file, cfn-lint on the template, hadolint on the
Dockerfile; and the rules the linters cannot know (retries, catches, no JSONata, template in sync)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_fakes import FUNCTIONS
from statelint.linter import Linter

from deploy.endpoint_stack import TEMPLATE_PATH as ENDPOINT_TEMPLATE_PATH
from deploy.stack import ACCOUNT_TEMPLATE_PATH, GENERATED_TEMPLATES, TEMPLATE_PATH, render_stack

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINES = sorted((ROOT / "deploy" / "statemachines").glob("*.asl.json"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install the dev extra (pip install -e .[dev])")
    return found


def all_states(definition: dict):
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)


def test_the_three_workflows_exist():
    assert [p.name for p in STATEMACHINES] == [
        "deployment.asl.json",
        "training.asl.json",
        "undeploy.asl.json",
    ]


@pytest.mark.parametrize("path", STATEMACHINES, ids=lambda p: p.stem)
def test_statelint_is_clean(path):
    assert Linter.validate(str(path)) == []


def test_statelint_catches_a_dangling_next():
    broken = json.loads(STATEMACHINES[1].read_text())
    broken["States"]["Transform"]["Next"] = "NoSuchState"
    assert any("NoSuchState" in problem for problem in Linter.validate(broken))


@pytest.mark.parametrize("path", STATEMACHINES, ids=lambda p: p.stem)
def test_every_task_retries_and_catches(path):
    definition = json.loads(path.read_text())
    assert "QueryLanguage" not in definition or definition["QueryLanguage"] == "JSONPath"
    for name, state in all_states(definition):
        if state["Type"] != "Task":
            continue
        assert state.get("Retry"), f"{path.name}: {name} has no Retry"
        assert all(r["BackoffRate"] > 1 for r in state["Retry"]), f"{name}: retries without backoff"
        assert state.get("Catch"), f"{path.name}: {name} has no Catch"
        # .sync fails under moto for SageMaker (and AWS has none for endpoints): poll those. Only the
        # nested deployment workflow (.sync:2) and the Fargate transform (ecs:runTask.sync) wait on a
        # service, and moto executes both.
        if ".sync" in state["Resource"]:
            assert state["Resource"] in (
                "arn:aws:states:::states:startExecution.sync:2",
                "arn:aws:states:::ecs:runTask.sync",
            ), name
        assert "Arguments" not in state and "Output" not in state, f"{name}: JSONata fields"


def _as_botocore_request(parameters, samples: dict[str, object]):
    """A Task state's PascalCase Parameters as the camelCase request Step Functions sends the ECS API: each
    `Key.$` path or intrinsic function replaced by a sample of what it evaluates to."""
    if isinstance(parameters, list):
        return [_as_botocore_request(item, samples) for item in parameters]
    if not isinstance(parameters, dict):
        return parameters
    request = {}
    for key, value in parameters.items():
        name = key.removesuffix(".$")
        request[name[0].lower() + name[1:]] = (
            samples[name] if key.endswith(".$") else (_as_botocore_request(value, samples))
        )
    return request


def test_the_fargate_transform_is_a_valid_ecs_run_task_request():
    """moto runs the state but takes what botocore takes; validate it against botocore's own ECS model,
    with the stack's substitutions, as AWS receives it."""
    import botocore.session
    from aws_fakes import definition
    from botocore.validate import ParamValidator

    state = json.loads(definition("training"))["States"]["TransformOnFargate"]
    assert state["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    samples = {
        "Subnets": ["subnet-00000001"],
        "SecurityGroups": ["sg-00000001"],
        "Value": '{"data_uri": "s3://b/k"}',
    }
    request = _as_botocore_request(state["Parameters"], samples)
    model = botocore.session.get_session().get_service_model("ecs").operation_model("RunTask")
    report = ParamValidator().validate(request, model.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert request["launchType"] == "FARGATE"
    override = request["overrides"]["containerOverrides"][0]
    assert override["name"] == "transform" and override["environment"][0]["name"] == "DRAGON_TRANSFORM"
    # the Choice in front of it compares the measured history with the plant's limit
    choice = json.loads(definition("training"))["States"]["TransformWhere"]["Choices"][0]
    assert choice == {
        "Variable": "$.source.size_bytes",
        "NumericGreaterThanPath": "$.source.fargate_above_bytes",
        "Next": "TransformOnFargate",
    }


def test_deployment_tags_only_on_the_success_path():
    """The one state that sets deployed.<env> is reachable only from an endpoint stack that completed this
    deployment (deploy/endpoint_stack.py: `deployed` = *_COMPLETE with this run's DeploymentId)."""
    definition = json.loads((ROOT / "deploy" / "statemachines" / "deployment.asl.json").read_text())
    pointing = [
        name
        for name, state in all_states(definition)
        if state.get("Next") == "TagDeployment"
        or any(c.get("Next") == "TagDeployment" for c in state.get("Choices", []) + state.get("Catch", []))
    ]
    assert pointing == ["StackReady"]


@pytest.mark.parametrize("template", GENERATED_TEMPLATES, ids=lambda p: p.stem)
def test_template_carries_the_current_definitions_patterns_and_policies(template):
    text = template.read_text()
    assert render_stack(text) == text, f"run `python -m deploy.stack` to refresh {template}"


@pytest.mark.parametrize("template", [*GENERATED_TEMPLATES, ENDPOINT_TEMPLATE_PATH], ids=lambda p: p.stem)
def test_cfn_lint_is_clean(template):
    result = subprocess.run([tool("cfn-lint"), str(template)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_checks_the_inline_state_machines(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE_PATH.read_text().replace('"Type": "Succeed"', '"Type": "Succeeded"', 1))
    result = subprocess.run([tool("cfn-lint"), str(broken)], capture_output=True, text=True, check=False)
    assert "E3601" in result.stdout


def _allow_statements(template: dict) -> list[dict]:
    """Every Allow statement of the template's IAM roles and managed policies."""
    documents = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            documents.append(properties["PolicyDocument"])
    # a conditional statement (Fn::If [condition, statement, AWS::NoValue]) is judged as when it applies
    statements = [s.get("Fn::If", [None, s])[1] for document in documents for s in document["Statement"]]
    return [s for s in statements if s["Effect"] == "Allow"]


@pytest.mark.parametrize(
    "template_path", [TEMPLATE_PATH, ACCOUNT_TEMPLATE_PATH, ENDPOINT_TEMPLATE_PATH], ids=lambda p: p.name
)
def test_iam_is_least_privilege(template_path):
    """No wildcard action anywhere; a "*" resource only where the actions have no resource-level
    permission, which the statement's Sid names."""
    from cfnlint.decode.cfn_yaml import loads  # understands the short intrinsic tags (!Sub, !GetAtt)

    statements = _allow_statements(loads(template_path.read_text()))
    if template_path == ENDPOINT_TEMPLATE_PATH:
        assert statements == [], "the endpoint stack acts with the main stack's roles"
        return
    assert len(statements) > 10
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if statement.get("Resource") == "*":
            assert statement.get("Sid", "").startswith(
                ("EcrLogin", "Metrics", "LogDelivery", "ScalableTargets")
            ), f"a '*' resource must say why in its Sid: {statement}"


def test_hadolint_is_clean():
    result = subprocess.run(
        [tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract():
    text = (ROOT / "Dockerfile").read_text()
    # One Python across the lock, the venv and the image (the lock was resolved with this venv's Python).
    python = re.search(r"^ARG PYTHON_VERSION=(\S+)$", text, re.MULTILINE)
    assert python and python[1] == f"{sys.version_info.major}.{sys.version_info.minor}", python
    assert "FROM ${BASE_REGISTRY}/python:${PYTHON_VERSION}-" in text, "the registry is a build argument"
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in text
    assert "pip install --no-cache-dir -r requirements.lock" in text
    assert "DRAGON_GIT_COMMIT=${GIT_COMMIT}" in text and "DRAGON_GIT_REPOSITORY=${GIT_REPOSITORY}" in text
    scripts = (ROOT / "pyproject.toml").read_text()
    assert (
        'train = "training.entrypoint:main"' in scripts and 'serve = "inference.entrypoint:main"' in scripts
    )


def test_lambda_functions_run_the_image_with_an_existing_handler():
    """Zips cannot hold numpy/scipy/pandas/pyarrow/pygam/MLflow (250 MB): every function runs the image,
    through the runtime interface client the Dockerfile installs, with a handler deploy.lambdas has."""
    from cfnlint.decode.cfn_yaml import loads

    from deploy import lambdas

    functions = {
        name: resource["Properties"]
        for name, resource in loads(TEMPLATE_PATH.read_text())["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    # Exactly the functions the state machines call (the moto harness provides the same ones).
    assert sorted(f["ImageConfig"]["Command"][0] for f in functions.values()) == sorted(
        f"deploy.lambdas.{handler}" for _, handler in FUNCTIONS.values()
    )
    for name, props in functions.items():
        assert props["PackageType"] == "Image" and "Handler" not in props and "Runtime" not in props, name
        assert props["ImageConfig"]["EntryPoint"] == ["python", "-m", "awslambdaric"], name
        (handler,) = props["ImageConfig"]["Command"]
        assert callable(getattr(lambdas, handler.removeprefix("deploy.lambdas."))), name
    assert "awslambdaric==" in (ROOT / "Dockerfile").read_text()


def test_every_workflow_logs_its_errors_and_its_failures_reach_the_topic():
    from cfnlint.decode.cfn_yaml import loads

    resources = loads(TEMPLATE_PATH.read_text())["Resources"]
    machines = sorted(n for n, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine")
    assert len(machines) == 3
    for name in machines:
        logging = resources[name]["Properties"]["LoggingConfiguration"]
        assert logging["Level"] == "ERROR", name
        log_group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
        assert log_group == {"Fn::GetAtt": ["WorkflowLogGroup", "Arn"]}, name
    rule = resources["WorkflowFailedRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert sorted(m["Ref"] for m in pattern["detail"]["stateMachineArn"]) == machines
    assert [t["Arn"] for t in rule["Targets"]] == [{"Ref": "FailureTopic"}]


BUILDSPEC = ROOT / "deploy" / "buildspec.yml"


def _run_buildspec(tmp_path: Path, image_exists: bool) -> list[str]:
    """The buildspec's phases as CodeBuild runs them (one bash, its variables set), with `aws` and `docker`
    replaced by scripts that log their arguments: the calls CI makes."""
    import yaml

    spec = yaml.safe_load(BUILDSPEC.read_text())
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool_name, status in (("aws", 0 if image_exists else 254), ("docker", 0)):
        fake = bin_dir / tool_name
        log = f'echo "{tool_name} $*" >> {calls}'
        fake.write_text(f'#!/bin/bash\n{log}\n[ "$2" = describe-images ] && exit {status}\nexit 0\n')
        fake.chmod(0o755)
    commands = [
        c for phase in ("pre_build", "build", "post_build") for c in spec["phases"][phase]["commands"]
    ]
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "AWS_REGION": "eu-west-1",
        "IMAGE_REPOSITORY_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/yet-dragon-dev",
        "CODEBUILD_RESOLVED_SOURCE_VERSION": "0123456789abcdef0123456789abcdef01234567",
        "CODEBUILD_SOURCE_REPO_URL": "https://github.com/example/yet-dragon",
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        **spec["env"]["variables"],
    }
    result = subprocess.run(
        ["bash", "-e", "-c", "\n".join(commands)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()


def test_ci_builds_the_image_with_its_commit_and_repository_and_pushes_it(tmp_path):
    calls = _run_buildspec(tmp_path, image_exists=False)
    repository = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/yet-dragon-dev"
    [build] = [c for c in calls if c.startswith("docker build")]
    assert "--build-arg GIT_COMMIT=0123456789abcdef0123456789abcdef01234567" in build
    assert "--build-arg GIT_REPOSITORY=https://github.com/example/yet-dragon" in build
    assert f"-t {repository}:0123456789ab ." in build
    assert f"docker push {repository}:0123456789ab" in calls
    assert any(
        c.startswith("docker login") and "123456789012.dkr.ecr.eu-west-1.amazonaws.com" in c for c in calls
    )


def test_ci_skips_a_commit_already_in_the_immutable_repository(tmp_path):
    calls = _run_buildspec(tmp_path, image_exists=True)
    assert not [c for c in calls if c.startswith(("docker build", "docker push"))]


def test_the_stack_builds_on_every_push_with_this_buildspec():
    from cfnlint.decode.cfn_yaml import loads

    resources = loads(TEMPLATE_PATH.read_text())["Resources"]
    project = resources["ImageBuild"]["Properties"]
    assert (ROOT / project["Source"]["BuildSpec"]) == BUILDSPEC
    assert project["Triggers"]["FilterGroups"] == [[{"Type": "EVENT", "Pattern": "PUSH"}]]
    assert project["Environment"]["PrivilegedMode"] is True
    [variable] = project["Environment"]["EnvironmentVariables"]
    assert variable == {
        "Name": "IMAGE_REPOSITORY_URI",
        "Value": {"Fn::GetAtt": ["ImageRepository", "RepositoryUri"]},
    }
    makefile = (ROOT / "Makefile").read_text()
    assert "--build-arg GIT_COMMIT=$$(git rev-parse HEAD)" in makefile and "--short=12" in makefile

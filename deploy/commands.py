"""`dragon pipeline train|deploy|undeploy` and `dragon models approve|reject|deploy|undeploy`.

The same steps as the Step Functions workflows, on the embedded default
(`--backend local`) or on AWS (`--backend aws`, when credentials and the stack exist).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from dragon.commands import models_app
from dragon.options import json_flag

console = Console()
pipeline_app = typer.Typer(help="Run the training or deployment workflow.", no_args_is_help=True)

PLANT_OPTION = typer.Option(None, "--plant", help="Plant spec TOML (default: the shipped plant).")
ENV_OPTION = typer.Option("local", "--env", help="Deployment environment (local, dev, prod).")
PORT_OPTION = typer.Option(8080, "--port", help="Local endpoint port.")
BACKEND_OPTION = typer.Option("local", "--backend", help="local (embedded default) or aws (Step Functions).")


def register(app: typer.Typer) -> None:
    pipeline_app.command("train")(pipeline_train)
    pipeline_app.command("deploy")(pipeline_deploy)
    pipeline_app.command("undeploy")(pipeline_undeploy)
    app.add_typer(pipeline_app, name="pipeline")
    models_app.command("approve")(models_approve)
    models_app.command("reject")(models_reject)
    models_app.command("deploy")(pipeline_deploy)
    models_app.command("undeploy")(pipeline_undeploy)
    app.command("demo")(demo)
    app.command("monitor")(monitor)


def _settings():
    from dragon.settings import load_settings

    return load_settings()


def _plant_name(plant: Path | None) -> str:
    from dragon.spec import load_plant

    return load_plant(plant).name


def _aws(plant: Path | None, env: str = "local"):
    """The deployed stack named by $DRAGON_STACK, else the plant's own in `env` (`<plant>-<env>`, dev for
    the default `--env local`); a DragonError says what to set when AWS is out of reach."""
    from deploy.aws import AwsBackend

    return AwsBackend.from_environment(plant_name=_plant_name(plant), env="dev" if env == "local" else env)


def _aws_env(aws, env: str) -> str:
    """On AWS the default `--env local` means the stack's own environment."""
    return aws.stack.environment if env == "local" else env


def pipeline_train(
    data: str = typer.Option(
        None,
        "--data",
        help="History (CSV or Parquet); on AWS an s3:// object, an s3:// prefix ending in / (every .csv and "
        ".parquet under it) or a file to upload.",
    ),
    query: str = typer.Option(
        None,
        "--query",
        help="On AWS, instead of --data: an Athena SQL query whose result is the history (run in the "
        "stack's AthenaWorkGroup, on its AthenaDatabase).",
    ),
    plant: Path = PLANT_OPTION,
    env: str = ENV_OPTION,
    approval: bool = typer.Option(
        False, "--approval/--no-approval", help="Hold new versions for manual approval."
    ),
    auto_deploy: bool = typer.Option(False, "--auto-deploy", help="Deploy the new version if it wins."),
    port: int = PORT_OPTION,
    holdout: str = typer.Option(
        None,
        "--holdout",
        help="Recent history the champion/challenger test compares on (on AWS an s3:// URI or a file "
        "to upload; default: the newest period of --data, the hold-out training sets aside).",
    ),
    backend: str = BACKEND_OPTION,
) -> None:
    """Transform → train (container entry point) → champion/challenger → register (→ deploy)."""
    from dragon.errors import DragonError

    if (data is None) == (query is None):
        raise DragonError("pipeline train: give the history as --data PATH_OR_URI or (on AWS) --query SQL")
    if query is not None and backend != "aws":
        raise DragonError("--query runs on Athena (--backend aws); locally give the history as --data PATH")
    if backend == "aws":
        if auto_deploy:
            raise DragonError(
                "--auto-deploy is for --backend local: on AWS the stack's ApprovalRequired "
                "parameter decides whether a winning version deploys itself"
            )
        aws = _aws(plant, env)
        execution = aws.start_training_workflow(
            data_uri=aws.stage_input(data, "data") if data is not None else None,
            query=query,
            plant_name=_plant_name(plant),
            env=_aws_env(aws, env),
            plant_uri=aws.stage_input(str(plant), "plants") if plant else None,
            holdout_uri=aws.stage_input(holdout, "data") if holdout else None,
            approval_required=approval,
        )
        console.print(f"started training workflow: {execution}")
        return
    from deploy.local_runner import run_training_pipeline

    with console.status("training workflow: transform → train → evaluate → register"):
        result = run_training_pipeline(
            _settings(),
            Path(data),
            plant=plant,
            env=env,
            holdout=holdout and Path(holdout),
            approval_required=approval,
            auto_deploy=auto_deploy,
            port=port,
        )
    from dragon.spec import load_plant
    from training.summary_table import training_table

    console.print(f"[green]registered version {result.version}[/] (approval: {result.approval})")
    console.print(training_table(result.summary, load_plant(plant)))
    verdict = "promote" if result.promote else "keep the deployed version"
    console.print(f"champion/challenger: {verdict} — {result.reason}")
    if result.deployment:
        console.print(f"[green]{result.deployment.message}[/]")
    elif result.promote and result.approval == "approved":
        console.print(f"deploy it with: dragon pipeline deploy --version {result.version}", highlight=False)


def pipeline_deploy(
    version: str = typer.Option(None, "--version", help="Version to deploy (default: champion)."),
    plant: Path = PLANT_OPTION,
    env: str = ENV_OPTION,
    port: int = PORT_OPTION,
    backend: str = BACKEND_OPTION,
    force_reason: str = typer.Option(
        "",
        "--force-reason",
        help="Deploy a version rejected for quality anyway; the reason is logged on the version.",
    ),
) -> None:
    """Deploy a version to an environment's endpoint and tag the registry."""
    if backend == "aws" and force_reason:
        from dragon.errors import DragonError

        raise DragonError(
            "--force-reason: a forced deployment runs on the embedded backend only (--backend local)"
        )
    if backend == "aws":
        aws = _aws(plant, env)
        execution = aws.start_deployment_workflow(
            plant_name=_plant_name(plant), version=version, env=_aws_env(aws, env)
        )
        console.print(f"started deployment workflow: {execution}")
        return
    from deploy.local_runner import run_deployment_pipeline

    with console.status(f"deploying to {env}"):
        result = run_deployment_pipeline(
            _settings(), _plant_name(plant), version, env=env, port=port, force_reason=force_reason
        )
    console.print(f"[green]{result.message}[/] — http://127.0.0.1:{port}/invocations")


def pipeline_undeploy(
    plant: Path = PLANT_OPTION, env: str = ENV_OPTION, backend: str = BACKEND_OPTION
) -> None:
    """Stop an environment's endpoint and remove its deployed.<env> tag."""
    if backend == "aws":
        aws = _aws(plant, env)
        execution = aws.start_undeploy_workflow(plant_name=_plant_name(plant), env=_aws_env(aws, env))
        console.print(f"started undeploy workflow: {execution}")
        return
    from deploy.local_runner import run_undeploy

    console.print(run_undeploy(_settings(), _plant_name(plant), env=env).message)


def _decide(version: str, plant: Path | None, decision: str, reason: str, backend: str) -> None:
    if backend == "aws":
        # The training workflow waiting on this version resumes and records the decision itself.
        _aws(plant).complete_approval(_plant_name(plant), version, decision, reason)
        console.print(f"version {version}: {decision}; the training workflow waiting on it resumes")
        return
    from deploy import steps

    decided = steps.ApprovalInput(_plant_name(plant), version, decision, reason)
    result = steps.set_approval(decided, _settings())
    console.print(json.dumps(result.to_dict()))


def models_approve(
    version: str = typer.Argument(...),
    plant: Path = PLANT_OPTION,
    reason: str = typer.Option("", "--reason"),
    backend: str = BACKEND_OPTION,
) -> None:
    """Approve a version for deployment."""
    _decide(version, plant, "approved", reason, backend)


def models_reject(
    version: str = typer.Argument(...),
    plant: Path = PLANT_OPTION,
    reason: str = typer.Option("", "--reason"),
    backend: str = BACKEND_OPTION,
) -> None:
    """Reject a version: it will not be deployed."""
    _decide(version, plant, "rejected", reason, backend)


def demo(
    workdir: Path = typer.Option(
        None, "--workdir", help="Where the simulated data goes (default DRAGON_HOME/demo)."
    ),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated plant history."),
) -> None:
    """The whole story on the default plant: simulate, train, deploy, recommend, drift, retrain."""
    from deploy.demo import run_demo

    settings = _settings()
    run_demo(settings, workdir or settings.home / "demo", seed=seed)


def monitor(
    input: Path = typer.Option(
        ..., "--input", help="History table (CSV/Parquet), or with --capture a data-capture folder."
    ),
    version: str = typer.Option(None, "--version", help="Version to judge against (default: champion)."),
    plant: Path = PLANT_OPTION,
    capture: bool = typer.Option(False, "--capture", help="--input is the endpoint's data capture."),
    actuals: Path = typer.Option(None, "--actuals", help="History holding the measured targets of captures."),
    as_json: bool = json_flag("the drift report as one object"),
    retrain_data: Path = typer.Option(None, "--retrain-data", help="On a violation, retrain on this now."),
) -> None:
    """Drift and model error of a window against a version's baselines; a violation triggers retraining."""
    from deploy.monitoring import monitor_window, render_monitoring
    from dragon.errors import DataError

    if not input.exists():
        raise DataError(
            f"{input}: not found (pass --input PATH to a history table, or a capture folder with --capture)"
        )
    result = monitor_window(
        _settings(),
        _plant_name(plant),
        version,
        input,
        capture=capture,
        actuals=actuals,
        retrain_data=retrain_data,
    )
    if as_json:
        print(json.dumps(result.to_dict(), allow_nan=False))
        return
    console.print(render_monitoring(result.report, result.quality, result.reason))
    if result.violations:
        console.print(
            "retraining triggered"
            if result.triggered
            else "retraining was already triggered within the cool-down"
        )
    if result.retraining is not None:
        retrained = result.retraining
        console.print(f"[green]retrained: version {retrained.version}[/] ({retrained.reason})")
    console.print(f"version {result.version}; report in {result.artifacts}")

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


def _settings():
    from dragon.settings import load_settings

    return load_settings()


def _plant_name(plant: Path | None) -> str:
    from dragon.spec import load_plant

    return load_plant(plant).name


def pipeline_train(
    data: Path = typer.Option(..., "--data", help="History (CSV or Parquet); on AWS an s3:// URI."),
    plant: Path = PLANT_OPTION,
    env: str = ENV_OPTION,
    approval: bool = typer.Option(False, "--approval/--no-approval", help="Hold new versions for manual approval."),
    auto_deploy: bool = typer.Option(False, "--auto-deploy", help="Deploy the new version if it wins."),
    port: int = PORT_OPTION,
    backend: str = BACKEND_OPTION,
) -> None:
    """Transform → train (container entry point) → champion/challenger → register (→ deploy)."""
    if backend == "aws":
        from deploy.aws import AwsBackend

        execution = AwsBackend.from_environment().start_training_workflow(data_uri=str(data), env=env)
        console.print(f"started training workflow: {execution}")
        return
    from deploy.local_runner import run_training_pipeline

    with console.status("training workflow: transform → train → evaluate → register"):
        result = run_training_pipeline(_settings(), data, plant=plant, env=env, approval_required=approval,
                                       auto_deploy=auto_deploy, port=port)
    console.print(f"[green]registered version {result.version}[/] (approval: {result.approval})")
    console.print(f"champion/challenger: {'promote' if result.promote else 'keep the deployed version'} — {result.reason}")
    if result.deployment:
        console.print(f"[green]{result.deployment.message}[/]")


def pipeline_deploy(
    version: str = typer.Option(None, "--version", help="Version to deploy (default: champion)."),
    plant: Path = PLANT_OPTION,
    env: str = ENV_OPTION,
    port: int = PORT_OPTION,
    backend: str = BACKEND_OPTION,
) -> None:
    """Deploy a version to an environment's endpoint and tag the registry."""
    if backend == "aws":
        from deploy.aws import AwsBackend

        execution = AwsBackend.from_environment().start_deployment_workflow(
            plant_name=_plant_name(plant), version=version, env=env)
        console.print(f"started deployment workflow: {execution}")
        return
    from deploy.local_runner import run_deployment_pipeline

    with console.status(f"deploying to {env}"):
        result = run_deployment_pipeline(_settings(), _plant_name(plant), version, env=env, port=port)
    console.print(f"[green]{result.message}[/] — http://127.0.0.1:{port}/invocations")


def pipeline_undeploy(plant: Path = PLANT_OPTION, env: str = ENV_OPTION) -> None:
    """Stop an environment's endpoint and remove its deployed.<env> tag."""
    from deploy.local_runner import run_undeploy

    console.print(run_undeploy(_settings(), _plant_name(plant), env=env).message)


def _decide(version: str, plant: Path | None, decision: str, reason: str) -> None:
    from deploy import steps

    result = steps.set_approval(steps.ApprovalInput(_plant_name(plant), version, decision, reason), _settings())
    console.print(json.dumps(result.to_dict()))


def models_approve(version: str = typer.Argument(...), plant: Path = PLANT_OPTION,
                   reason: str = typer.Option("", "--reason")) -> None:
    """Approve a version for deployment."""
    _decide(version, plant, "approved", reason)


def models_reject(version: str = typer.Argument(...), plant: Path = PLANT_OPTION,
                  reason: str = typer.Option("", "--reason")) -> None:
    """Reject a version: it will not be deployed."""
    _decide(version, plant, "rejected", reason)


def demo(
    workdir: Path = typer.Option(None, "--workdir", help="Where the simulated data goes (default DRAGON_HOME/demo)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated plant history."),
) -> None:
    """The whole story on the default plant: simulate, train, deploy, recommend, drift, retrain."""
    from deploy.demo import run_demo

    settings = _settings()
    run_demo(settings, workdir or settings.home / "demo", seed=seed)

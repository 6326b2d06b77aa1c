"""The SageMaker `train` entry point (`docker run IMAGE train`).

Container contract (FACTS.md): data in `<base>/input/data/<channel>/` (channel
`train`: CSV or Parquet files), hyperparameters in
`<base>/input/config/hyperparameters.json` (string values, JSON-decoded here), the
plant spec from a `config` channel (a .toml file) or the `plant` hyperparameter
(TOML text), the bundle written to `<base>/model` (tarred to model.tar.gz by
SageMaker), the failure reason to `<base>/output/failure`. `<base>` is
SAGEMAKER_BASE_DIR or /opt/ml; SM_* variables override single paths, so the same
code runs here against a temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from dragon.data import is_history_file
from dragon.errors import DataError, DragonError
from dragon.spec import PlantSpec, load_plant, parse_plant

FAILURE_CHARS = 1024  # SageMaker keeps the first 1024 characters as FailureReason


@dataclass(frozen=True)
class ContainerPaths:
    base: Path
    model_dir: Path
    train_channel: Path
    config_channel: Path
    hyperparameters: Path
    output_dir: Path

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def output_data_dir(self) -> Path:
        return Path(os.environ.get("SM_OUTPUT_DATA_DIR", self.output_dir / "data"))


def container_paths() -> ContainerPaths:
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    env = os.environ.get
    return ContainerPaths(
        base=base,
        model_dir=Path(env("SM_MODEL_DIR", base / "model")),
        train_channel=Path(env("SM_CHANNEL_TRAIN", base / "input" / "data" / "train")),
        config_channel=Path(env("SM_CHANNEL_CONFIG", base / "input" / "data" / "config")),
        hyperparameters=Path(env("SM_INPUT_CONFIG_DIR", base / "input" / "config")) / "hyperparameters.json",
        output_dir=Path(env("SM_OUTPUT_DIR", base / "output")),
    )


def read_hyperparameters(paths: ContainerPaths) -> dict:
    """SageMaker passes every value as a string; decode JSON where it parses."""
    raw = json.loads(os.environ["SM_HPS"]) if "SM_HPS" in os.environ else None
    if raw is None and paths.hyperparameters.is_file():
        raw = json.loads(paths.hyperparameters.read_text())
    decoded = {}
    for key, value in (raw or {}).items():
        try:
            decoded[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


def resolve_plant(paths: ContainerPaths, hyperparameters: dict) -> PlantSpec:
    specs = sorted(paths.config_channel.glob("*.toml")) if paths.config_channel.is_dir() else []
    if len(specs) > 1:
        raise DataError(
            f"{paths.config_channel}: more than one plant spec ({', '.join(p.name for p in specs)})"
        )
    if specs:
        return load_plant(specs[0])
    if "plant" in hyperparameters:
        return parse_plant(str(hyperparameters["plant"]), "hyperparameter 'plant'")
    return load_plant(None)


def history_files(channel: Path) -> list[Path]:
    if not channel.is_dir():
        raise DataError(f"{channel}: the training channel 'train' is missing")
    files = sorted(p for p in channel.rglob("*") if is_history_file(p.name))
    if not files:
        raise DataError(f"{channel}: no .csv or .parquet history in the training channel")
    return files


def run(paths: ContainerPaths) -> dict:
    from training.pipeline import train_bundle

    hyperparameters = read_hyperparameters(paths)
    spec = resolve_plant(paths, hyperparameters)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    report_dir = paths.output_data_dir / "report"
    outcome = train_bundle(
        history_files(paths.train_channel),
        spec,
        paths.model_dir,
        report_dir,
        seed=int(hyperparameters.get("seed", 0)),
    )
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    (paths.output_data_dir / "summary.json").write_text(json.dumps(outcome.summary, indent=2, default=float))
    return outcome.summary


def _write_failure(paths: ContainerPaths, reason: str) -> None:
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(reason[:FAILURE_CHARS])
    except OSError:
        pass


def _stop_on_sigterm(signum, frame) -> None:  # StopTrainingJob sends SIGTERM, SIGKILL 120 s later
    raise KeyboardInterrupt("training job stopped (SIGTERM)")


def main() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    paths = container_paths()
    try:
        summary = run(paths)
    except DragonError as error:
        _write_failure(paths, error.message)
        print(f"error: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt as stop:
        _write_failure(paths, str(stop) or "training interrupted")
        sys.exit(130)
    except Exception as error:  # a bug: keep the traceback in the log, the reason in the failure file
        traceback.print_exc()
        _write_failure(paths, f"{type(error).__name__}: {error}")
        sys.exit(1)
    print(json.dumps({"status": "completed", "models": list(summary["models"])}))


if __name__ == "__main__":
    main()

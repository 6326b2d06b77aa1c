"""The model registry and experiment catalog: MLflow, SQLite under DRAGON_HOME by default.

One registered model per plant; one version = one bundle of all the plant's GAMs and detectors
(six models for the default plant: four GAMs, two Isolation Forests). Aliases (`champion`) and
tags (`deployed.<env>=true`, `approval=pending|approved|rejected`) follow ARCHITECTURE.md. MLflow
is imported lazily: `import mlflow` costs ~1 s.

Registration is atomic: the bundle is verified and stored as run artifacts first,
and the version is created in one database transaction only after that, so a
training that fails or is killed leaves no half version.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dragon.errors import RegistryError
from dragon.settings import Settings

CHAMPION = "champion"
APPROVAL_TAG = "approval"  # its values: PENDING, APPROVED, REJECTED (REJECTED also for QUALITY_TAG)
APPROVAL_REASON_TAG = "approval.reason"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
BUNDLE_ARTIFACT = "bundle"
# The training's verdict on the plant's [quality] floors: "passed" or "rejected" (the failing figures in
# QUALITY_FAILURES_TAG). A rejected version is never champion; a forced deployment logs its reason in
# QUALITY_OVERRIDE_TAG.
QUALITY_TAG = "quality"
QUALITY_FAILURES_TAG = "quality.failures"
QUALITY_OVERRIDE_TAG = "quality.override"


# What the workflows record on a version (deploy/steps.py): the champion/challenger verdict (JSON), where
# its model.tar.gz lives (what deployments and later comparisons read), the bundle it was registered from.
PROMOTION_TAG = "promotion"
MODEL_DATA_URL_TAG = "model_data_url"
BUNDLE_URI_TAG = "bundle.uri"

DEPLOYED_PREFIX = "deployed."  # + environment name: "true" while that environment serves the version
ENDPOINT_PREFIX = "endpoint."  # + environment name: the endpoint serving the version there
FAILURE_PREFIX = "last_failure."  # + environment name: why the last deployment there failed


def deployed_tag(env: str) -> str:
    return f"{DEPLOYED_PREFIX}{env}"


def endpoint_tag(env: str) -> str:
    return f"{ENDPOINT_PREFIX}{env}"


def failure_tag(env: str) -> str:
    return f"{FAILURE_PREFIX}{env}"


@dataclass(frozen=True)
class ModelVersionInfo:
    model_name: str
    version: str
    run_id: str | None
    source: str
    created_at: int
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def quality_rejected(self) -> bool:
        return self.tags.get(QUALITY_TAG) == REJECTED

    @property
    def deployed_envs(self) -> list[str]:
        return sorted(
            k.removeprefix(DEPLOYED_PREFIX)
            for k, v in self.tags.items()
            if k.startswith(DEPLOYED_PREFIX) and v == "true"
        )


def _client(settings: Settings):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    ensure_store(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_store(settings: Settings) -> None:
    """Create the SQLite store once, under a file lock beside the database: several processes creating
    a new database at the same moment race on schema migration (FACTS.md). The lock and its marker
    live with the database, not in the home, since a shared store may sit outside every home."""
    if not settings.tracking_uri.startswith("sqlite:///"):
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    store_dir = Path(settings.tracking_uri.removeprefix("sqlite:///")).parent
    store_dir.mkdir(parents=True, exist_ok=True)
    marker = store_dir / ".store-ready"
    if marker.exists():
        return
    with open(store_dir / ".store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=settings.tracking_uri).search_experiments(max_results=1)
            marker.touch()


def experiment_id(settings: Settings, plant_name: str) -> str:
    client = _client(settings)
    found = client.get_experiment_by_name(plant_name)
    if found is not None:
        if settings.artifact_uri and urlparse(found.artifact_location).scheme in ("", "file"):
            raise RegistryError(
                f"experiment '{plant_name}' in {settings.tracking_uri} stores its artifacts at "
                f"{found.artifact_location}, a local folder that does not outlive this process; rename or "
                f"delete that experiment so that a new one stores them under {settings.artifact_root}"
            )
        return found.experiment_id
    from mlflow.exceptions import MlflowException

    location = f"{settings.artifact_root}/{plant_name}"
    try:
        return client.create_experiment(plant_name, artifact_location=location)
    except MlflowException:  # another process created it first
        return client.get_experiment_by_name(plant_name).experiment_id


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> Path:
    """The local path of a file:// artifact URI (the embedded default's artifact store)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise RegistryError(f"bundle source {uri} is not on this machine (download it, or use --bundle)")
    return Path(unquote(parsed.path))


def _aliases(client, plant_name: str) -> dict[str, list[str]]:
    """Version -> aliases. Version searches do not carry aliases; the registered model does."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(plant_name).aliases or {}
    except MlflowException:
        return {}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def _info(client, version, aliases: list[str] | None = None) -> ModelVersionInfo:
    metrics: dict[str, float] = {}
    if version.run_id:
        try:
            metrics = dict(client.get_run(version.run_id).data.metrics)
        except Exception:  # noqa: BLE001 - a deleted run must not hide the version
            metrics = {}
    return ModelVersionInfo(
        model_name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        source=version.source,
        created_at=int(version.creation_timestamp or 0),
        aliases=sorted(
            aliases if aliases is not None else _aliases(client, version.name).get(str(version.version), [])
        ),
        tags=dict(version.tags or {}),
        metrics=metrics,
    )


def register_bundle(
    settings: Settings,
    plant_name: str,
    run_id: str,
    bundle_dir: Path,
    tags: dict[str, str] | None = None,
    *,
    quality_failures: list[str] | None = None,
) -> ModelVersionInfo:
    """Store a verified bundle as the run's artifacts and create a registry version for it.

    A version with `quality_failures` (figures below the plant's [quality] floors) is registered for the
    record, marked `approval=rejected` with reason "quality: ..." in the same call, and never becomes the
    champion; the first version that passes does."""
    from mlflow.exceptions import MlflowException

    from dragon.bundle import verify_bundle

    verify_bundle(bundle_dir)
    client = _client(settings)
    client.log_artifacts(run_id, str(bundle_dir), BUNDLE_ARTIFACT)
    source = f"{client.get_run(run_id).info.artifact_uri}/{BUNDLE_ARTIFACT}"
    if is_local(source):
        verify_bundle(local_path(source))
    try:
        client.create_registered_model(plant_name)
    except MlflowException:
        pass  # exists already (or created by a concurrent training)
    verdict = {QUALITY_TAG: "passed"}
    if quality_failures:
        failures = "; ".join(quality_failures)[:4000]
        verdict = {
            QUALITY_TAG: REJECTED,
            QUALITY_FAILURES_TAG: failures,
            APPROVAL_TAG: REJECTED,
            APPROVAL_REASON_TAG: f"quality: {failures}",
        }
    version = client.create_model_version(
        plant_name, source=source, run_id=run_id, tags={**(tags or {}), **verdict}
    )
    if not quality_failures and not _has_alias(client, plant_name, CHAMPION):
        client.set_registered_model_alias(plant_name, CHAMPION, version.version)
    return get_version(settings, plant_name, str(version.version))


def _has_alias(client, plant_name: str, alias: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version_by_alias(plant_name, alias)
        return True
    except MlflowException:
        return False


def get_version(settings: Settings, plant_name: str, version_or_alias: str | None = None) -> ModelVersionInfo:
    """A version by number, or by alias (default: champion)."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    wanted = str(version_or_alias or CHAMPION)
    try:
        if wanted.isdigit():
            found = client.get_model_version(plant_name, wanted)
        else:
            found = client.get_model_version_by_alias(plant_name, wanted)
    except MlflowException:
        known = list_versions(settings, plant_name)
        hint = ", ".join(v.version for v in known) or "none (run `dragon train` first)"
        raise RegistryError(
            f"plant '{plant_name}' has no model version or alias '{wanted}' in {settings.tracking_uri}; "
            f"versions: {hint}"
        ) from None
    return _info(client, found)


def resolve_bundle(settings: Settings, plant_name: str, version_or_alias: str | None) -> tuple[Path, str]:
    """(local bundle directory, version number) of a registered version or alias (default: champion):
    the one place a version becomes its bundle."""
    info = get_version(settings, plant_name, version_or_alias)
    path = local_path(info.source)
    if not path.is_dir():
        raise RegistryError(f"version {info.version} of '{plant_name}': its bundle {path} is missing")
    return path, info.version


def plant_bundle(plant: Path | None, version_or_alias: str | None) -> tuple[Path, str]:
    """`resolve_bundle` for a command's --plant PATH (default: the shipped plant) and --version V."""
    from dragon.settings import load_settings
    from dragon.spec import load_plant

    return resolve_bundle(load_settings(), load_plant(plant).name, version_or_alias)


def list_versions(settings: Settings, plant_name: str) -> list[ModelVersionInfo]:
    client = _client(settings)
    found = client.search_model_versions(f"name = '{plant_name}'")
    aliases = _aliases(client, plant_name)
    infos = [_info(client, v, aliases.get(str(v.version), [])) for v in found]
    return sorted(infos, key=lambda v: int(v.version), reverse=True)


def set_tag(settings: Settings, plant_name: str, version: str, key: str, value: str) -> None:
    get_version(settings, plant_name, version)
    _client(settings).set_model_version_tag(plant_name, version, key, value)


def delete_tag(settings: Settings, plant_name: str, version: str, key: str) -> None:
    info = get_version(settings, plant_name, version)
    if key in info.tags:
        _client(settings).delete_model_version_tag(plant_name, version, key)


def set_alias(settings: Settings, plant_name: str, alias: str, version: str) -> None:
    info = get_version(settings, plant_name, version)
    if alias == CHAMPION and info.quality_rejected:
        raise RegistryError(
            f"version {version} of '{plant_name}' is rejected: quality "
            f"({info.tags.get(QUALITY_FAILURES_TAG, '')})"
            "; it cannot become the champion"
        )
    _client(settings).set_registered_model_alias(plant_name, alias, version)


def deployed_version(settings: Settings, plant_name: str, env: str) -> ModelVersionInfo | None:
    """The version carrying `deployed.<env>=true`, if any."""
    for info in list_versions(settings, plant_name):
        if info.tags.get(deployed_tag(env)) == "true":
            return info
    return None


def run_metrics(settings: Settings, run_id: str) -> dict[str, Any]:
    return dict(_client(settings).get_run(run_id).data.metrics)

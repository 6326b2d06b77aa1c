"""The workflow steps as plain Python: typed inputs, typed outputs.

The local runner (`dragon pipeline ...`, deploy/local_runner.py) calls them in
order; on AWS the Lambda handlers (deploy/lambdas.py) call the same functions
from the Step Functions state machines. Registry conventions (ARCHITECTURE.md):
`deployed.<env>=true` only after a deployment succeeded, deleted on undeploy;
`approval=pending|approved|rejected`; alias `champion` on the promoted version.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deploy.storage import (
    fetch,
    fetch_bundle,
    fetch_history,
    put_bytes,
    put_file,
    read_history_files,
    read_history_uri,
)
from dragon import registry
from dragon.bundle import Bundle, load_bundle
from dragon.errors import RegistryError
from dragon.provenance import files_sha256
from dragon.settings import Settings, load_settings
from dragon.spec import load_plant


class _Step:
    def to_dict(self) -> dict:
        return asdict(self)


# --- transform -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformInput(_Step):
    data_uri: str
    plant_uri: str | None = None
    # On AWS (deploy/data_lake.py names both): the checked history as one Parquet table, which the training
    # job and the hold-out read, and the receipt the register step records; None: check only (local runs).
    table_uri: str | None = None
    receipt_uri: str | None = None
    query: str | None = None  # the Athena query whose result data_uri is
    query_execution_id: str | None = None


@dataclass(frozen=True)
class TransformOutput(_Step):
    data_uri: str  # the table written, else the history checked
    rows_in: int
    rows_used: int
    report: dict
    source: str = ""  # the history read: a file, an S3 object or prefix, an Athena result
    source_sha256: str = ""  # of the files read, as dragon.provenance hashes training data
    query: str | None = None
    query_execution_id: str | None = None


def transform(inp: TransformInput) -> TransformOutput:
    """Check and prepare the history before an expensive training job starts (fails fast); on AWS write it
    as one table and a receipt of what was read. Runs in a Lambda, or for a large history in a Fargate
    task (deploy/transform_entrypoint.py)."""
    from training.transforms import prepare_training_data

    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        spec = load_plant(fetch(inp.plant_uri, scratch_path) if inp.plant_uri else None)
        files = fetch_history(inp.data_uri, scratch_path / "data")
        history = read_history_files(files, spec)
        source = f"Athena query {inp.query_execution_id}" if inp.query_execution_id else inp.data_uri
        data = prepare_training_data(history, spec, source=source)
        if inp.table_uri:
            table = scratch_path / "table.parquet"
            history.to_parquet(table, index=False)
            put_file(table, inp.table_uri)
        output = TransformOutput(
            inp.table_uri or inp.data_uri,
            data.report.rows_in,
            data.report.rows_used,
            data.report.to_dict(),
            source=inp.data_uri,
            source_sha256=files_sha256(files),
            query=inp.query,
            query_execution_id=inp.query_execution_id,
        )
    if inp.receipt_uri:
        put_bytes(json.dumps(output.to_dict(), default=str).encode(), inp.receipt_uri)
    return output


# --- champion / challenger -----------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluateInput(_Step):
    plant_name: str
    candidate_bundle_uri: str
    env: str
    data_uri: str | None = None  # the history the candidate was trained on: its newest rows are the hold-out
    holdout_uri: str | None = None  # another, more recent history to compare on instead


@dataclass(frozen=True)
class EvaluateOutput(_Step):
    promote: bool
    reason: str
    candidate: dict
    champion: dict | None


def holdout_rmse(bundle: Bundle, holdout) -> dict[str, float]:
    """Each model's RMSE on the hold-out rows (the measured target), fed the columns it was trained on."""
    from dragon.dynamics import model_input_matrix

    scores = {}
    for name in bundle.spec.model_order:
        model = bundle.spec.models[name]
        predicted = bundle.gams[name].predict(model_input_matrix(holdout, bundle.spec, name))
        scores[name] = float(np.sqrt(np.mean((holdout[model.target].to_numpy(float) - predicted) ** 2)))
    return scores


def _promotion_models(bundle: Bundle) -> list[str]:
    spec = bundle.spec
    default = [spec.objective.model, *(c.model for c in spec.constraints)]
    return spec.promotion.models or list(dict.fromkeys(default))


def compare_bundles(candidate: Bundle, champion: Bundle | None, holdout) -> EvaluateOutput:
    """The candidate wins unless a promotion model's RMSE is worse than the champion's by more than
    the plant's tolerance, on the same hold-out rows."""
    candidate_rmse = holdout_rmse(candidate, holdout)
    if champion is None:
        return EvaluateOutput(True, "no deployed version to beat", candidate_rmse, None)
    champion_rmse = holdout_rmse(champion, holdout)
    tolerance = candidate.spec.promotion.tolerance
    worse = [
        f"{name} RMSE {candidate_rmse[name]:.4g} > {champion_rmse[name]:.4g} (+{tolerance:.0%})"
        for name in _promotion_models(candidate)
        if candidate_rmse[name] > champion_rmse[name] * (1 + tolerance)
    ]
    if worse:
        return EvaluateOutput(False, "challenger loses: " + "; ".join(worse), candidate_rmse, champion_rmse)
    return EvaluateOutput(
        True,
        f"challenger within {tolerance:.0%} of the champion on every promotion model",
        candidate_rmse,
        champion_rmse,
    )


def bundle_uri(info: registry.ModelVersionInfo) -> str:
    """Where a version's bundle lives for every process: the model.tar.gz it was registered from (S3 on
    AWS), else the registry's own copy."""
    return info.tags.get(registry.MODEL_DATA_URL_TAG) or info.source


def evaluate_challenger(inp: EvaluateInput, settings: Settings | None = None) -> EvaluateOutput:
    """Compare the candidate with the version deployed to `env` on the same hold-out rows: the newest
    period of the history (the time split training makes), or of `holdout_uri` when given."""
    from training.transforms import prepare_training_data

    settings = settings or load_settings()
    holdout_uri = inp.holdout_uri or inp.data_uri
    if holdout_uri is None:
        raise RegistryError("evaluate: the event names no history (data_uri) to take the hold-out from")
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        candidate = load_bundle(fetch_bundle(inp.candidate_bundle_uri, scratch_path / "candidate"))
        deployed = registry.deployed_version(settings, inp.plant_name, inp.env)
        champion = None
        if deployed is not None:
            champion = load_bundle(fetch_bundle(bundle_uri(deployed), scratch_path / "champion"))
        spec = candidate.spec
        history = read_history_uri(holdout_uri, spec, scratch_path / "holdout")
        holdout = prepare_training_data(history, spec, source=holdout_uri).holdout
        return compare_bundles(candidate, champion, holdout)


# --- register and approve ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterInput(_Step):
    bundle_uri: str
    plant_name: str
    run_id: str | None = None
    approval_required: bool = False
    promotion: dict | None = None  # an EvaluateOutput as a dict, recorded on the version
    data_receipt_uri: str | None = (
        None  # the transform's receipt: what the training read (recorded on the run)
    )


@dataclass(frozen=True)
class RegisterOutput(_Step):
    version: str
    model_name: str
    approval: str
    promote: bool = True


#: MLflow refuses longer tag values; the receipt (its URI is recorded too) keeps the whole query.
TAG_VALUE_CHARS = 8000


def data_source_tags(receipt_uri: str) -> dict[str, str]:
    """The run's record of where its data came from: the history read (an S3 object or prefix, or the Athena
    query with its execution id and result) and its sha256, beside the data.sha256 of the table trained on."""
    from deploy.data_lake import read_receipt

    receipt = read_receipt(receipt_uri)
    tags = {
        "data.source": receipt["source"],
        "data.source.sha256": receipt["source_sha256"],
        "data.table": receipt["data_uri"],
        "data.receipt": receipt_uri,
    }
    if receipt.get("query"):
        query = receipt["query"]
        cut = "… (truncated: the receipt holds it whole)"
        tags["data.query"] = (
            query if len(query) <= TAG_VALUE_CHARS else query[: TAG_VALUE_CHARS - len(cut)] + cut
        )
        tags["data.query_execution_id"] = receipt["query_execution_id"]
    return tags


def register(inp: RegisterInput, settings: Settings | None = None) -> RegisterOutput:
    """Register a trained bundle (directory or model.tar.gz) as a new version of the plant's model."""
    from training.catalog import record_training

    settings = settings or load_settings()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        bundle_dir = fetch_bundle(inp.bundle_uri, scratch_path)
        report_dir = bundle_dir.parent / "report" if (bundle_dir.parent / "report").is_dir() else None
        tags = {registry.BUNDLE_URI_TAG: inp.bundle_uri}
        if inp.data_receipt_uri:
            tags |= data_source_tags(inp.data_receipt_uri)
        result = record_training(settings, bundle_dir, report_dir=report_dir, extra_tags=tags)
    version = result["version"]
    below_floor = not result.get("quality", {}).get("passed", True)
    if below_floor:  # registered as rejected: quality (dragon/registry.py), never approved automatically
        approval = registry.REJECTED
    else:
        approval = registry.PENDING if inp.approval_required else registry.APPROVED
        registry.set_tag(settings, inp.plant_name, version, registry.APPROVAL_TAG, approval)
    promote = (True if inp.promotion is None else bool(inp.promotion.get("promote"))) and not below_floor
    if inp.promotion is not None:
        registry.set_tag(
            settings,
            inp.plant_name,
            version,
            registry.PROMOTION_TAG,
            json.dumps({"promote": promote, "reason": inp.promotion.get("reason", "")})[:5000],
        )
    # Last: a deployment started by the job's completion finds the version by this tag, so it must
    # not see the version before its approval and promotion verdict are recorded.
    registry.set_tag(settings, inp.plant_name, version, registry.MODEL_DATA_URL_TAG, inp.bundle_uri)
    return RegisterOutput(version, inp.plant_name, approval, promote)


@dataclass(frozen=True)
class ApprovalInput(_Step):
    plant_name: str
    version: str
    decision: str  # approved | rejected
    reason: str = ""


def set_approval(inp: ApprovalInput, settings: Settings | None = None) -> RegisterOutput:
    settings = settings or load_settings()
    if inp.decision not in (registry.APPROVED, registry.REJECTED):
        raise RegistryError(
            f"approval decision must be '{registry.APPROVED}' or '{registry.REJECTED}', not '{inp.decision}'"
        )
    info = registry.get_version(settings, inp.plant_name, inp.version)
    if inp.decision == registry.APPROVED and info.quality_rejected:
        raise RegistryError(
            f"version {inp.version} of '{inp.plant_name}' is rejected: quality "
            f"({info.tags.get(registry.QUALITY_FAILURES_TAG, '')}); it cannot be approved. "
            "To deploy it anyway: "
            f"dragon pipeline deploy --version {inp.version} --force-reason TEXT"
        )
    registry.set_tag(settings, inp.plant_name, inp.version, registry.APPROVAL_TAG, inp.decision)
    if inp.reason:
        registry.set_tag(settings, inp.plant_name, inp.version, registry.APPROVAL_REASON_TAG, inp.reason)
    return RegisterOutput(inp.version, inp.plant_name, inp.decision, inp.decision == registry.APPROVED)


# --- deploy and undeploy bookkeeping -----------------------------------------------------------------
@dataclass(frozen=True)
class ResolveInput(_Step):
    plant_name: str
    env: str
    version: str | None = None
    force_reason: str = ""  # deploy a version rejected: quality anyway; the reason is logged on the version


@dataclass(frozen=True)
class ResolveOutput(_Step):
    version: str
    model_data_url: str
    bundle_uri: str


def resolve_version(inp: ResolveInput, settings: Settings | None = None) -> ResolveOutput:
    """The version to deploy (default: the champion). Refuses rejected or still-pending versions. A version
    rejected: quality deploys only with a `force_reason`, logged on the version (QUALITY_OVERRIDE_TAG)."""
    settings = settings or load_settings()
    info = registry.get_version(settings, inp.plant_name, inp.version)
    if info.quality_rejected:
        failures = info.tags.get(registry.QUALITY_FAILURES_TAG, "")
        if not inp.force_reason.strip():
            raise RegistryError(
                f"version {info.version} of '{inp.plant_name}' is rejected: quality ({failures}); deploy it "
                "anyway only with a reason: "
                f"dragon pipeline deploy --version {info.version} --force-reason TEXT"
            )
        override = {"env": inp.env, "reason": inp.force_reason.strip(), "failures": failures}
        registry.set_tag(
            settings, inp.plant_name, info.version, registry.QUALITY_OVERRIDE_TAG, json.dumps(override)[:5000]
        )
        return ResolveOutput(info.version, bundle_uri(info), info.source)
    approval = info.tags.get(registry.APPROVAL_TAG, registry.APPROVED)
    if approval != registry.APPROVED:
        raise RegistryError(
            f"version {info.version} of '{inp.plant_name}' is {approval}, not approved: "
            f"approve it first (dragon models approve {info.version})"
        )
    return ResolveOutput(info.version, bundle_uri(info), info.source)


@dataclass(frozen=True)
class TagInput(_Step):
    plant_name: str
    version: str
    env: str
    endpoint_name: str = ""


@dataclass(frozen=True)
class TagOutput(_Step):
    plant_name: str
    env: str
    deployed_version: str | None
    message: str


def tag_deployment(inp: TagInput, settings: Settings | None = None) -> TagOutput:
    """After a deployment succeeded: this version carries deployed.<env>, no other version does,
    and it becomes the champion (unless it is rejected: quality and was forced: the champion stays)."""
    settings = settings or load_settings()
    key = registry.deployed_tag(inp.env)
    deployed = registry.get_version(settings, inp.plant_name, inp.version)
    for info in registry.list_versions(settings, inp.plant_name):
        if info.version != inp.version and key in info.tags:
            registry.delete_tag(settings, inp.plant_name, info.version, key)
    registry.set_tag(settings, inp.plant_name, inp.version, key, "true")
    if inp.endpoint_name:
        registry.set_tag(
            settings, inp.plant_name, inp.version, registry.endpoint_tag(inp.env), inp.endpoint_name
        )
    if not deployed.quality_rejected:
        registry.set_alias(settings, inp.plant_name, registry.CHAMPION, inp.version)
    return TagOutput(inp.plant_name, inp.env, inp.version, f"version {inp.version} deployed to {inp.env}")


@dataclass(frozen=True)
class UntagInput(_Step):
    plant_name: str
    env: str
    version: str | None = None


def untag_deployment(inp: UntagInput, settings: Settings | None = None) -> TagOutput:
    """After an undeploy: no version carries deployed.<env> (or only the given one loses it)."""
    settings = settings or load_settings()
    key = registry.deployed_tag(inp.env)
    removed = []
    for info in registry.list_versions(settings, inp.plant_name):
        if key in info.tags and inp.version in (None, info.version):
            registry.delete_tag(settings, inp.plant_name, info.version, key)
            registry.delete_tag(settings, inp.plant_name, info.version, registry.endpoint_tag(inp.env))
            removed.append(info.version)
    message = (
        f"removed {key} from version(s) {', '.join(removed)}" if removed else f"nothing deployed to {inp.env}"
    )
    return TagOutput(inp.plant_name, inp.env, None, message)


@dataclass(frozen=True)
class FailureInput(_Step):
    plant_name: str
    env: str
    error: str
    cause: str = ""
    version: str | None = None


def record_failure(inp: FailureInput, settings: Settings | None = None) -> TagOutput:
    """A deployment failed. deployed.<env> is set only after success, so the failed version never
    got it and the previously deployed version (still serving) keeps it; record why on the version."""
    settings = settings or load_settings()
    if inp.version is not None:
        reason = json.dumps({"env": inp.env, "error": inp.error, "cause": inp.cause[:2000]})
        registry.set_tag(settings, inp.plant_name, inp.version, registry.failure_tag(inp.env), reason)
    still = registry.deployed_version(settings, inp.plant_name, inp.env)
    return TagOutput(
        inp.plant_name,
        inp.env,
        still.version if still else None,
        f"deployment to {inp.env} failed: {inp.error}",
    )

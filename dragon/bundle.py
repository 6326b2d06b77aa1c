"""The model bundle: one registered version of a plant's models (its GAMs and detectors), as files.

Layout of a bundle directory (tarred as `model.tar.gz` on SageMaker):

    manifest.json            sha256 of every other file + provenance
    plant.toml               the plant spec it was trained with
    gams/<model>.json|.npz   each GAM as arrays and JSON (dragon/gam_arrays.py)
    detectors/<name>.skops   each Isolation Forest (skops: no pickle, no code on load)
    detectors/<name>.json    its features, calibrated threshold and per-feature envelope
    baselines.json           per-feature training baselines (drift)
    calibration.json         calibrated intervals, covariance scales, measurement noise
                             (dragon/calibration.py)
    metrics.json             training and hold-out metrics
    monitor/statistics.json, monitor/constraints.json   Model Monitor shapes of the baselines

`load_bundle` verifies every hash and refuses a bundle with a changed, missing or
unlisted file. Nothing in a bundle can execute code when loaded.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dragon.calibration import Calibration
from dragon.errors import BundleError, SpecError
from dragon.features import DerivedFeature, feature_table
from dragon.provenance import Provenance, file_sha256
from dragon.spec import PlantSpec, parse_plant

FORMAT_VERSION = 2  # 2: calibration.json
MANIFEST = "manifest.json"
# skops refuses any type it does not trust by default; an Isolation Forest needs exactly this one.
TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class Detector:
    """A fitted Isolation Forest with its calibrated threshold and per-feature range envelope.

    `features` name tags or derived features of the plant spec (`derived` holds the compiled ones it
    reads; dragon/features.py). score = -forest.score_samples(X), in (0, 1); a row is flagged when
    score > threshold OR any feature lies outside [envelope_low, envelope_high] (Isolation Forest
    scores saturate: a row far out in one feature can score like a normal one) OR a feature is missing.
    Empty envelope lists mean no envelope.
    """

    name: str
    features: list[str]
    forest: Any  # sklearn.ensemble.IsolationForest
    threshold: float
    contamination: float
    envelope_low: list[float] = field(default_factory=list)
    envelope_high: list[float] = field(default_factory=list)
    derived: dict[str, DerivedFeature] = field(default_factory=dict)

    def feature_rows(self, data: Any) -> np.ndarray:
        """The (n, len(features)) matrix of this detector's features for a DataFrame, {tag: array} or one
        state {tag: float} (then n = 1); derived features are computed from their tags."""
        return feature_table(data, self.features, self.derived)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        return -self.forest.score_samples(rows)

    def outside_envelope(self, rows: np.ndarray) -> np.ndarray:
        """(n,) True where any feature of `rows` (from `feature_rows`) lies outside its envelope."""
        rows = np.atleast_2d(rows)
        if not self.envelope_low:
            return np.zeros(len(rows), dtype=bool)
        low, high = np.asarray(self.envelope_low), np.asarray(self.envelope_high)
        return ((rows < low) | (rows > high)).any(axis=1)

    def envelope_breaches(self, row: np.ndarray) -> list[str]:
        """The features of one row (1-D) outside their envelope, to explain a block."""
        if not self.envelope_low:
            return []
        row = np.asarray(row, dtype=float).ravel()
        outside = (row < np.asarray(self.envelope_low)) | (row > np.asarray(self.envelope_high))
        return [feature for feature, out in zip(self.features, outside, strict=True) if out]

    def assess(
        self, rows: np.ndarray, scorer: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, flagged, outside_envelope) for rows from `feature_rows`. A row with a missing (NaN)
        feature scores NaN and is flagged: a gate that cannot score a state must not vouch for it.
        `scorer` replaces `scores` with an equivalent (the optimizer's compiled forest)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        complete = np.isfinite(rows).all(axis=1)
        scores = np.full(len(rows), np.nan)
        if complete.any():
            scores[complete] = (scorer or self.scores)(rows[complete])
        outside = self.outside_envelope(rows)
        flagged = ~complete | outside | (scores > self.threshold)
        return scores, flagged, outside


@dataclass(frozen=True)
class Manifest:
    format_version: int
    plant_name: str
    created_at: str
    provenance: dict
    files: dict[str, str]

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "plant_name": self.plant_name,
            "created_at": self.created_at,
            "provenance": self.provenance,
            "files": self.files,
        }


@dataclass
class Bundle:
    path: Path
    spec: PlantSpec
    gams: dict[str, Any]  # model name -> fitted pygam LinearGAM
    detectors: dict[str, Detector]
    baselines: dict[str, Any]  # tag -> dragon.drift.FeatureBaseline
    metrics: dict
    manifest: Manifest
    calibration: Calibration
    _extracted: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """The version of an unregistered bundle: its manifest's hash names its exact content."""
        from dragon.provenance import file_sha256

        return "bundle-" + file_sha256(self.path / "manifest.json")[:12]


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))


def write_bundle(
    directory: str | Path,
    *,
    spec: PlantSpec,
    gams: dict[str, Any],
    detectors: dict[str, Detector],
    baselines: dict[str, Any],
    metrics: dict,
    calibration: Calibration,
    provenance: Provenance,
) -> Path:
    """Write a complete bundle into `directory` (created; must be empty) and return it."""
    from skops.io import dump

    from dragon.gam_arrays import save_gam
    from dragon.model_monitor import model_monitor_constraints, model_monitor_statistics

    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise BundleError(f"{root}: bundle directory is not empty")
    root.mkdir(parents=True, exist_ok=True)
    (root / "plant.toml").write_text(spec.source_text)
    for name, gam in gams.items():
        save_gam(gam, root / "gams", name)
    for name, detector in detectors.items():
        (root / "detectors").mkdir(exist_ok=True)
        dump(detector.forest, root / "detectors" / f"{name}.skops")
        _write_json(
            root / "detectors" / f"{name}.json",
            {
                "features": detector.features,
                "threshold": detector.threshold,
                "contamination": detector.contamination,
                "envelope_low": detector.envelope_low,
                "envelope_high": detector.envelope_high,
            },
        )
    _write_json(root / "baselines.json", {tag: baseline.to_dict() for tag, baseline in baselines.items()})
    _write_json(root / "metrics.json", metrics)
    _write_json(root / "calibration.json", calibration.model_dump())
    _write_json(root / "monitor" / "statistics.json", model_monitor_statistics(baselines))
    _write_json(root / "monitor" / "constraints.json", model_monitor_constraints(baselines, spec.drift))
    files = {
        str(path.relative_to(root)): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = Manifest(FORMAT_VERSION, spec.name, datetime.now(UTC).isoformat(), provenance.to_dict(), files)
    _write_json(root / MANIFEST, manifest.to_dict())
    return root


def _read_manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root}: not a model bundle (no {MANIFEST})")
    try:
        raw = json.loads(path.read_text())
        manifest = Manifest(**raw)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: unreadable manifest ({error})") from None
    if manifest.format_version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {manifest.format_version}, this build reads {FORMAT_VERSION}"
        )
    return manifest


def verify_bundle(root: Path) -> Manifest:
    """Check that every file matches the manifest and nothing is missing or added."""
    manifest = _read_manifest(root)
    problems = []
    for relative, expected in manifest.files.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"missing file {relative}")
        elif file_sha256(path) != expected:
            problems.append(f"{relative} does not match its sha256 in the manifest (changed after training)")
    listed = set(manifest.files) | {MANIFEST}
    for path in root.rglob("*"):
        if path.is_file() and str(path.relative_to(root)) not in listed:
            problems.append(f"unlisted file {path.relative_to(root)}")
    if problems:
        raise BundleError(f"{root}: bundle refused: " + "; ".join(problems))
    return manifest


def _extract_archive(archive: Path) -> tempfile.TemporaryDirectory:
    target = tempfile.TemporaryDirectory(prefix="dragon-bundle-")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target.name, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        target.cleanup()
        raise BundleError(f"{archive}: cannot extract the bundle archive ({error})") from None
    return target


def _load_detector(root: Path, name: str, spec: PlantSpec) -> Detector:
    from skops.io import get_untrusted_types, load

    model_path = root / "detectors" / f"{name}.skops"
    untrusted = [t for t in get_untrusted_types(file=model_path) if t not in TRUSTED_SKOPS_TYPES]
    if untrusted:
        raise BundleError(f"{model_path}: refuses to load untrusted types {untrusted}")
    meta = json.loads((root / "detectors" / f"{name}.json").read_text())
    forest = load(model_path, trusted=TRUSTED_SKOPS_TYPES)
    features = list(meta["features"])
    low, high = [float(v) for v in meta["envelope_low"]], [float(v) for v in meta["envelope_high"]]
    if len(low) != len(high) or (low and len(low) != len(features)):
        raise BundleError(
            f"{root / 'detectors' / name}.json: envelope does not match its {len(features)} features"
        )
    derived = {f: spec.derived_features[f] for f in features if f in spec.derived_features}
    return Detector(
        name, features, forest, float(meta["threshold"]), float(meta["contamination"]), low, high, derived
    )


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle directory or `model.tar.gz`; raise BundleError if it does not verify."""
    from dragon.drift import FeatureBaseline
    from dragon.gam_arrays import load_gam

    source = Path(path)
    extracted = None
    if source.is_file() and source.name.endswith((".tar.gz", ".tgz")):
        extracted = _extract_archive(source)
        root = Path(extracted.name)
        # SageMaker tars the contents of /opt/ml/model; accept one wrapping folder too.
        if not (root / MANIFEST).exists():
            children = [child for child in root.iterdir() if child.is_dir()]
            if len(children) == 1:
                root = children[0]
    elif source.is_dir():
        root = source
    else:
        raise BundleError(f"{source}: no bundle here (give a bundle directory or a model.tar.gz)")
    manifest = verify_bundle(root)
    try:
        spec = parse_plant((root / "plant.toml").read_text(), str(root / "plant.toml"))
    except SpecError as error:
        raise BundleError(f"{root}: the bundle's plant spec does not validate: {error.message}") from None
    try:
        gams = {name: load_gam(root / "gams", name) for name in spec.models}
        detectors = {name: _load_detector(root, name, spec) for name in spec.detectors}
        raw_baselines = json.loads((root / "baselines.json").read_text())
        baselines = {tag: FeatureBaseline.from_dict(raw) for tag, raw in raw_baselines.items()}
        metrics = json.loads((root / "metrics.json").read_text())
        calibration = Calibration.model_validate_json((root / "calibration.json").read_text())
    except (OSError, KeyError, ValueError) as error:
        raise BundleError(f"{root}: bundle content does not load ({error})") from None
    return Bundle(root, spec, gams, detectors, baselines, metrics, manifest, calibration, extracted)


def archive_bundle(root: Path, archive: Path) -> Path:
    """Tar a bundle directory's contents as SageMaker does with /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(root.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def copy_bundle(source: Path, target: Path) -> Path:
    """Copy a verified bundle (used when registering into the artifact store)."""
    verify_bundle(source)
    shutil.copytree(source, target)
    return target

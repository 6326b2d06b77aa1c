"""The anomaly gate: both Isolation Forests score the current state and every candidate.

sklearn's `score_samples` costs ~3 ms for one row (input validation, a Python call per tree),
so the fitted trees are packed into flat arrays and traversed for all rows and trees at once:
each step moves every (row, tree) pair one level down. Path length = depth of the leaf reached
+ c(n_leaf) (the average path length of an unsuccessful BST search over the leaf's training
samples); score = 2^(-mean path / c(max_samples)). As in sklearn, inputs are compared in
float32. `CompiledForest.verify` checks the result against `score_samples` when a bundle loads.

Anomaly score convention (BRIEF): score = -score_samples(X), higher = more anomalous; a row is
flagged when score > threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dragon.bundle import Detector
from dragon.errors import BundleError
from optimizer.recommendation import DetectorVerdict, FarTag

VERIFY_TOLERANCE = 1e-9
FAR_TAGS = 3  # tags named in a blocked answer


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): average path length of an unsuccessful search in a BST of n nodes (sklearn's definition)."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class CompiledForest:
    """A fitted IsolationForest as flat node arrays (all trees concatenated)."""

    def __init__(self, forest: Any) -> None:
        n_inputs = int(forest.n_features_in_)
        features, thresholds, lefts, rights, leaf_path = [], [], [], [], []
        roots = []
        offset = 0
        for tree, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            n_nodes = t.node_count
            leaf = t.children_left == -1
            depth = _node_depths(t.children_left, t.children_right)
            feature = np.where(
                leaf, 0, np.asarray(columns)[np.maximum(t.feature, 0)]
            )  # tree column -> input column
            features.append(feature)
            thresholds.append(np.where(leaf, np.inf, t.threshold))
            # A leaf points to itself, so extra steps after reaching it change nothing.
            own = np.arange(n_nodes) + offset
            lefts.append(np.where(leaf, own, t.children_left + offset))
            rights.append(np.where(leaf, own, t.children_right + offset))
            leaf_path.append(np.where(leaf, depth + average_path_length(t.n_node_samples), 0.0))
            roots.append(offset)
            offset += n_nodes
            if int(np.max(depth)) > 64:
                raise BundleError("an isolation tree deeper than 64 levels: not an Isolation Forest")
        self.n_inputs = n_inputs
        # Node i lives at slot 2i of doubled arrays, so that one step is `child[slot + went_left]`
        # (child[2i] = right child's slot, child[2i + 1] = left child's slot): flat `take`s only.
        feature, threshold = np.concatenate(features).astype(np.intp), np.concatenate(thresholds)
        self._feature = np.repeat(feature, 2)
        self._threshold = np.repeat(threshold, 2)
        self._child = (
            np.column_stack([np.concatenate(rights), np.concatenate(lefts)]).astype(np.intp).ravel() * 2
        )
        self._leaf_path = np.repeat(np.concatenate(leaf_path), 2)
        self._roots = np.array(roots, dtype=np.intp) * 2
        self._steps = int(
            max(_node_depths(e.tree_.children_left, e.tree_.children_right).max() for e in forest.estimators_)
        )
        self._normaliser = float(average_path_length(np.array([forest.max_samples_]))[0])

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score (= -score_samples) of each row of X (n, n_inputs)."""
        X = np.asarray(np.atleast_2d(X), dtype=np.float32).astype(np.float64)
        n = len(X)
        flat = X.ravel()
        row_start = (np.arange(n) * X.shape[1])[:, None]
        slot = np.broadcast_to(self._roots, (n, len(self._roots)))
        for _ in range(self._steps):
            went_left = flat.take(row_start + self._feature.take(slot)) <= self._threshold.take(slot)
            slot = self._child.take(slot + went_left)
        mean_path = self._leaf_path.take(slot).mean(axis=1)
        if self._normaliser == 0.0:
            return np.ones(n)
        return 2.0 ** (-mean_path / self._normaliser)

    def verify(
        self, sample_X: np.ndarray, forest: Any, *, name: str, tolerance: float = VERIFY_TOLERANCE
    ) -> float:
        expected = -forest.score_samples(np.asarray(sample_X, dtype=float))
        error = float(np.max(np.abs(self.scores(sample_X) - expected)))
        if not error <= tolerance:
            raise BundleError(
                f"compiled detector '{name}' differs from sklearn by {error:.3g} (> {tolerance:g})"
            )
        return error


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(left))
    for node in range(len(left)):  # sklearn numbers children after their parent
        if left[node] != -1:
            depth[left[node]] = depth[node] + 1
            depth[right[node]] = depth[node] + 1
    return depth


@dataclass(frozen=True)
class GateResult:
    verdicts: dict[str, DetectorVerdict]
    far_tags: dict[str, list[FarTag]]  # flagged detector -> tags furthest from training, worst first
    breaches: dict[str, list[str]] = field(default_factory=dict)  # detector -> envelope breaches in words

    @property
    def flagged(self) -> list[str]:
        return [name for name, verdict in self.verdicts.items() if verdict.anomalous]

    @property
    def passed(self) -> bool:
        return not self.flagged

    def reason(self) -> str:
        parts = []
        for name in self.flagged:
            v = self.verdicts[name]
            far = ", ".join(describe_far_tag(t) for t in self.far_tags.get(name, []))
            why = f"score {v.score:.3f} vs threshold {v.threshold:.3f}"
            if v.outside_envelope:
                breaches = self.breaches.get(name, v.outside_envelope)
                why += f"; outside the training envelope: {' and '.join(breaches)}"
            parts.append(f"detector '{name}' flags the state ({why}); furthest from training: {far or 'n/a'}")
        return "; ".join(parts)


class Gate:
    """Every detector of a bundle, compiled, with the training baselines used to explain a block.

    A row is flagged by a detector when its score exceeds the threshold, when a feature lies outside
    the detector's training envelope, or when a feature cannot be computed (dragon.bundle.Detector)."""

    def __init__(self, detectors: Mapping[str, Detector], baselines: Mapping[str, Any]) -> None:
        self.detectors = dict(detectors)
        self._baselines = baselines
        self._compiled = {}
        for name, detector in self.detectors.items():
            compiled = CompiledForest(detector.forest)
            if compiled.n_inputs != len(detector.features):
                raise BundleError(
                    f"detector '{name}' was fitted on {compiled.n_inputs} inputs, "
                    f"its spec lists {len(detector.features)} features"
                )
            compiled.verify(self._verification_rows(detector), detector.forest, name=name)
            self._compiled[name] = compiled

    def _verification_rows(self, detector: Detector, rows: int = 64, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        centre = np.array([_stat(self._baselines.get(f), "mean", 0.0) for f in detector.features])
        spread = np.array([max(_stat(self._baselines.get(f), "std", 1.0), 1e-9) for f in detector.features])
        return centre + spread * rng.normal(0.0, 2.0, size=(rows, len(detector.features)))

    def assess(self, rows: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per detector (features (n, F), scores (n,), flagged (n,)) for rows given as {tag: values}."""
        out = {}
        for name, detector in self.detectors.items():
            X = np.atleast_2d(detector.feature_rows(rows))
            scores, flagged, _ = detector.assess(X, self._compiled[name].scores)
            out[name] = (X, scores, flagged)
        return out

    def screen(self, rows: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(flagged (n,): True where any detector flags the row, {detector: scores (n,)})."""
        assessed = self.assess(rows)
        flagged = np.zeros(len(next(iter(rows.values()))), dtype=bool)
        for _, _, hit in assessed.values():
            flagged |= hit
        return flagged, {name: scores for name, (_, scores, _) in assessed.items()}

    def check(self, state: Mapping[str, float]) -> GateResult:
        verdicts, far, breaches = {}, {}, {}
        rows = {tag: np.array([value]) for tag, value in state.items()}
        for name, (X, scores, flagged) in self.assess(rows).items():
            detector = self.detectors[name]
            verdicts[name] = DetectorVerdict(
                score=float(scores[0]),
                threshold=detector.threshold,
                anomalous=bool(flagged[0]),
                outside_envelope=detector.envelope_breaches(X[0]),
            )
            if flagged[0]:
                far[name] = self.far_tags(detector, state)
                breaches[name] = [
                    _breach_in_words(detector, X[0], feature) for feature in verdicts[name].outside_envelope
                ]
        return GateResult(verdicts, far, breaches)

    def far_tags(self, detector: Detector, state: Mapping[str, float], limit: int = FAR_TAGS) -> list[FarTag]:
        """The tags the detector reads (a derived feature through the tags it is computed from) furthest
        from their training mean, in training standard deviations; each says which way it moves the
        derived features it feeds."""
        tags = dict.fromkeys(
            t
            for f in detector.features
            for t in (detector.derived[f].inputs if f in detector.derived else (f,))
        )
        found = []
        for tag in tags:
            baseline = self._baselines.get(tag)
            if baseline is None or tag not in state:
                continue
            mean, std = _stat(baseline, "mean", 0.0), _stat(baseline, "std", 0.0)
            value = float(state[tag])
            moves = {}
            for feature in detector.derived.values():
                if tag in feature.inputs:
                    # Compared with this tag at its training mean (the others as they are).
                    change = feature.evaluate_state(state) - feature.evaluate_state({**state, tag: mean})
                    if np.isfinite(change) and change != 0:
                        moves[feature.name] = "raises" if change > 0 else "lowers"
            z = (value - mean) / std if std > 0 else 0.0
            found.append(FarTag(tag=tag, value=value, z_score=float(z), moves=moves))
        return sorted(found, key=lambda t: -abs(t.z_score))[:limit]


def describe_far_tag(far: FarTag, unit: str = "") -> str:
    """'tag = value unit (1.8 sd above its training mean; lowers evaporator_ua)'."""
    side = "above" if far.z_score > 0 else "below"
    words = f"{abs(far.z_score):.1f} sd {side} its training mean"
    if far.moves:
        words += "; " + ", ".join(f"{how} {feature}" for feature, how in far.moves.items())
    return f"{far.tag} = {f'{far.value:.4g} {unit}'.rstrip()} ({words})"


def _breach_in_words(detector: Detector, row: np.ndarray, feature: str) -> str:
    """'evaporator_ua = 0.81, below its training range [0.9, 1.4] (computed from a, b, c)'."""
    position = detector.features.index(feature)
    value, low, high = row[position], detector.envelope_low[position], detector.envelope_high[position]
    side = "below" if value < low else "above"
    words = f"{feature} = {value:.4g}, {side} its training range [{low:.4g}, {high:.4g}]"
    if feature in detector.derived:
        words += f" (computed from {', '.join(detector.derived[feature].inputs)})"
    return words


def _stat(baseline: Any, key: str, default: float) -> float:
    if baseline is None:
        return default
    value = baseline.get(key, default) if isinstance(baseline, Mapping) else getattr(baseline, key, default)
    return float(value) if value is not None and np.isfinite(value) else default

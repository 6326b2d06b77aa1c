"""Isolation Forest detectors: fit one per `[detectors.*]` table, calibrate its threshold, evaluate the gate.

Score convention (BRIEF): score = -IsolationForest.score_samples(X), higher = more anomalous; a detector
flags a row when score > threshold. `contamination` only sets the threshold: the (1 - contamination)
quantile of the scores of known-normal rows, so about that share of normal rows is flagged.

Calibration on out-of-block scores. In-sample scores are optimistic, but with the default subsample of
256 rows per tree each training row sits in very few trees, so that bias is small; the larger bias is
time: the plant drifts (cooling water, fouling, feed), and a forest scores the period it learnt from
lower than a period it has not seen, which is what the hold-out period and live operation are. So the
normal training rows (time-ordered) are cut into `CALIBRATION_BLOCKS` contiguous blocks; each block is
scored by a forest fitted on the other blocks, and the threshold is the quantile of these out-of-block
scores. The returned forest is fitted on all rows with the same seed. bench/gate_quality.py compares this
with in-sample calibration on the hold-out period.

The gate flags a row when any detector flags it. A row with a missing value in a detector's features is
flagged by that detector: a gate that cannot score a state must not vouch for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from dragon.bundle import Detector
from dragon.errors import DataError

# The simulator's labels (PLANT.md). Gate recall is over the process episodes and the novel operation;
# the sensor faults hide from raw tags and are reported per episode only.
from dragon.simulator.episodes import EPISODE_TYPES, PROCESS_EPISODES
from dragon.spec import DetectorSpec

EPISODE = "episode"
CALIBRATION_BLOCKS = 10  # 5 gave 0.07 % hold-out false alarms at 1 % contamination: too cautious
MIN_NORMAL_ROWS = 100  # a 1 % quantile of fewer rows says nothing


@dataclass(frozen=True)
class EpisodeMetrics:
    """One detector (or the gate) against the rows of one episode type.

    precision = flagged episode rows / (flagged episode rows + flagged normal rows): the precision on the
    hold-out rows of this episode type and the normal rows. auc ranks the episode rows' scores against the
    normal rows' scores (threshold-free; None for the gate, which has no single score).
    """

    rows: int
    flagged: int
    recall: float
    precision: float | None
    auc: float | None = None

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "flagged": self.flagged,
            "recall": self.recall,
            "precision": self.precision,
            "auc": self.auc,
        }


@dataclass(frozen=True)
class DetectorMetrics:
    name: str
    threshold: float
    contamination: float
    false_alarm_rate: float | None  # flagged share of normal rows (None when there are none)
    by_episode: dict[str, EpisodeMetrics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "contamination": self.contamination,
            "false_alarm_rate": self.false_alarm_rate,
            "by_episode": {name: metrics.to_dict() for name, metrics in self.by_episode.items()},
        }


@dataclass(frozen=True)
class GateMetrics:
    """All detectors together: a row is flagged when any detector flags it."""

    recall: float | None  # over the rows of PROCESS_EPISODES present (None when none are)
    recall_by_episode: dict[str, float]  # every episode type present in the rows
    false_alarm_rate: float | None  # over normal rows (episode == "")
    n_rows: int
    n_normal: int
    by_episode: dict[str, EpisodeMetrics]
    detectors: dict[str, DetectorMetrics]

    def to_dict(self) -> dict:
        return {
            "recall": self.recall,
            "false_alarm_rate": self.false_alarm_rate,
            "recall_by_episode": dict(self.recall_by_episode),
            "n_rows": self.n_rows,
            "n_normal": self.n_normal,
        }


def _feature_matrix(spec_name: str, features: list[str], rows: pd.DataFrame) -> np.ndarray:
    missing = [tag for tag in features if tag not in rows]
    if missing:
        raise DataError(f"detector '{spec_name}': the data has no column for tag(s) {', '.join(missing)}")
    return rows[features].to_numpy(dtype=float)


def _forest(n_estimators: int, seed: int) -> IsolationForest:
    # contamination="auto" keeps sklearn from scoring the training rows for an offset we do not use.
    return IsolationForest(n_estimators=n_estimators, contamination="auto", random_state=seed)


def out_of_block_scores(spec: DetectorSpec, X: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Score each of `CALIBRATION_BLOCKS` contiguous blocks of X with a forest fitted on the others."""
    scores = np.empty(len(X))
    block = np.arange(len(X)) * CALIBRATION_BLOCKS // len(X)
    for k in range(CALIBRATION_BLOCKS):
        inside = block == k
        forest = _forest(spec.n_estimators, seed).fit(X[~inside])
        scores[inside] = -forest.score_samples(X[inside])
    return scores


def fit_detector(spec: DetectorSpec, normal_rows: pd.DataFrame, *, seed: int = 0) -> Detector:
    """Fit `spec`'s Isolation Forest on known-normal, time-ordered rows and calibrate its threshold.

    Rows with a missing value in the detector's features are left out. Raises DataError when a feature
    column is missing or fewer than MIN_NORMAL_ROWS complete rows remain.
    """
    X = _feature_matrix(spec.name, spec.features, normal_rows)
    complete = np.isfinite(X).all(axis=1)
    if complete.sum() < MIN_NORMAL_ROWS:
        empty = [tag for tag, values in zip(spec.features, X.T, strict=True) if not np.isfinite(values).any()]
        hint = f" (no values at all for {', '.join(empty)})" if empty else ""
        raise DataError(
            f"detector '{spec.name}': {int(complete.sum())} complete normal training rows{hint}, "
            f"need at least {MIN_NORMAL_ROWS}; give a longer history or fewer features"
        )
    X = X[complete]
    threshold = float(np.quantile(out_of_block_scores(spec, X, seed=seed), 1.0 - spec.contamination))
    forest = _forest(spec.n_estimators, seed).fit(X)
    return Detector(spec.name, list(spec.features), forest, threshold, spec.contamination)


def detector_flags(detector: Detector, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(scores, flagged) for every row; a row with a missing feature scores NaN and is flagged."""
    X = _feature_matrix(detector.name, detector.features, rows)
    complete = np.isfinite(X).all(axis=1)
    scores = np.full(len(X), np.nan)
    if complete.any():
        scores[complete] = detector.scores(X[complete])
    return scores, ~complete | (scores > detector.threshold)


def _episode_labels(rows: pd.DataFrame) -> np.ndarray:
    # A history without labels is taken as normal operation, as the detectors' training rows are.
    if EPISODE not in rows:
        return np.full(len(rows), "", dtype=object)
    return rows[EPISODE].fillna("").astype(str).to_numpy(dtype=object)


def _share(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if len(flags) else None


def _auc(episode_scores: np.ndarray, normal_scores: np.ndarray) -> float | None:
    """Probability that an episode row outscores a normal row (ties count half); NaN scores rank highest."""
    if not len(episode_scores) or not len(normal_scores):
        return None
    ranks = pd.Series(np.concatenate([episode_scores, normal_scores])).fillna(np.inf).rank().to_numpy()
    n_episode, n_normal = len(episode_scores), len(normal_scores)
    return float((ranks[:n_episode].sum() - n_episode * (n_episode + 1) / 2) / (n_episode * n_normal))


def _episode_metrics(
    flagged: np.ndarray, labels: np.ndarray, episode: str, scores: np.ndarray | None
) -> EpisodeMetrics:
    inside, normal = labels == episode, labels == ""
    hits, false_hits = int(flagged[inside].sum()), int(flagged[normal].sum())
    return EpisodeMetrics(
        rows=int(inside.sum()),
        flagged=hits,
        recall=hits / int(inside.sum()),
        precision=hits / (hits + false_hits) if hits + false_hits else None,
        auc=None if scores is None else _auc(scores[inside], scores[normal]),
    )


def _episodes_present(labels: np.ndarray) -> list[str]:
    present = set(labels) - {""}
    return [e for e in EPISODE_TYPES if e in present] + sorted(present - set(EPISODE_TYPES))


def evaluate_gate(detectors: dict[str, Detector], rows: pd.DataFrame) -> GateMetrics:
    """Evaluate each detector and the gate (any detector flags) on labelled rows (`episode`, "" = normal)."""
    labels = _episode_labels(rows)
    normal = labels == ""
    episodes = _episodes_present(labels)
    gate = np.zeros(len(rows), dtype=bool)
    per_detector = {}
    for name, detector in detectors.items():
        scores, flagged = detector_flags(detector, rows)
        gate |= flagged
        per_detector[name] = DetectorMetrics(
            name=name,
            threshold=detector.threshold,
            contamination=detector.contamination,
            false_alarm_rate=_share(flagged[normal]),
            by_episode={e: _episode_metrics(flagged, labels, e, scores) for e in episodes},
        )
    by_episode = {e: _episode_metrics(gate, labels, e, None) for e in episodes}
    process = np.isin(labels, PROCESS_EPISODES)
    return GateMetrics(
        recall=_share(gate[process]),
        recall_by_episode={e: m.recall for e, m in by_episode.items()},
        false_alarm_rate=_share(gate[normal]),
        n_rows=len(rows),
        n_normal=int(normal.sum()),
        by_episode=by_episode,
        detectors=per_detector,
    )

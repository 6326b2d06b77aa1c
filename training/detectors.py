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

Envelopes. Forest scores saturate: a row 30 sd out in one feature of ten isolates hardly faster than an
extreme normal row, so a one-tag fault (a pH trip, a vacuum loss) can hide below the threshold. Each
detector therefore also holds a range envelope per feature, learnt from the same normal rows:
[q_lo - m*(q_hi - q_lo), q_hi + m*(q_hi - q_lo)] with q_lo, q_hi the `envelope_quantile` and
1 - `envelope_quantile` quantiles and m = `envelope_margin`, or the feature's own `envelope_margins` entry
(DetectorSpec). A detector flags a row when its forest flags it OR any feature leaves the envelope.
Features may be derived (dragon/features.py): a relationship such as the steam approach shifts under
evaporator fouling while every tag stays normal.

The gate flags a row when any detector flags it. A row with a missing value in a detector's features is
flagged by that detector: a gate that cannot score a state must not vouch for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from dragon.bundle import Detector
from dragon.errors import DataError
from dragon.features import DerivedFeature, feature_table

# The simulator's labels (PLANT.md). Gate recall is over the process episodes and the novel operation;
# the sensor faults hide from raw tags and are reported per episode only.
from dragon.simulator.episodes import EPISODE_TYPES, PROCESS_EPISODES
from dragon.spec import DetectorSpec, PlantSpec
from training.transforms import RECOVERING

EPISODE = "episode"
CALIBRATION_BLOCKS = 10  # 5 gave 0.07 % hold-out false alarms at 1 % contamination: too cautious
MIN_NORMAL_ROWS = 100  # a 1 % quantile of fewer rows says nothing


@dataclass(frozen=True)
class EpisodeMetrics:
    """One detector (or the gate) against the rows of one episode type.

    precision = flagged episode rows / (flagged episode rows + flagged normal rows): the precision on the
    hold-out rows of this episode type and the normal rows. auc ranks the episode rows' scores against the
    normal rows' scores (threshold-free; None for the gate, which has no single score). by_forest /
    by_envelope count the episode rows the forest threshold / the envelope caught (a row may count in both;
    a row with a missing feature is flagged by neither part).
    """

    rows: int
    flagged: int
    recall: float
    precision: float | None
    auc: float | None = None
    by_forest: int = 0
    by_envelope: int = 0

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "flagged": self.flagged,
            "recall": self.recall,
            "precision": self.precision,
            "auc": self.auc,
            "by_forest": self.by_forest,
            "by_envelope": self.by_envelope,
        }


@dataclass(frozen=True)
class DetectorMetrics:
    name: str
    threshold: float
    contamination: float
    false_alarm_rate: float | None  # flagged share of normal rows (None when there are none)
    by_episode: dict[str, EpisodeMetrics] = field(default_factory=dict)
    forest_false_alarm_rate: float | None = None  # the forest threshold alone
    envelope_false_alarm_rate: float | None = None  # the envelope alone

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "contamination": self.contamination,
            "false_alarm_rate": self.false_alarm_rate,
            "forest_false_alarm_rate": self.forest_false_alarm_rate,
            "envelope_false_alarm_rate": self.envelope_false_alarm_rate,
            "by_episode": {name: metrics.to_dict() for name, metrics in self.by_episode.items()},
        }


@dataclass(frozen=True)
class GateMetrics:
    """All detectors together: a row is flagged when any detector flags it."""

    recall: float | None  # over the rows of PROCESS_EPISODES present (None when none are)
    recall_by_episode: dict[str, float]  # every episode type present in the rows
    false_alarm_rate: float | None  # over normal rows (episode == "" and not recovering)
    n_rows: int
    n_normal: int
    n_recovering: int  # rows settling after an episode, in no rate
    by_episode: dict[str, EpisodeMetrics]
    detectors: dict[str, DetectorMetrics]
    # each of the recommender's own checks counted in the gate (evaluate_gate: `checks`), alone: its false
    # alarms and the share of each episode type's rows it blocks
    check_false_alarm_rate: dict[str, float | None] = field(default_factory=dict)
    check_recall_by_episode: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "recall": self.recall,
            "false_alarm_rate": self.false_alarm_rate,
            "recall_by_episode": dict(self.recall_by_episode),
            "check_false_alarm_rate": dict(self.check_false_alarm_rate),
            "check_recall_by_episode": {name: dict(r) for name, r in self.check_recall_by_episode.items()},
            "rows_by_episode": {name: metrics.rows for name, metrics in self.by_episode.items()},
            "n_rows": self.n_rows,
            "n_normal": self.n_normal,
            "n_recovering": self.n_recovering,
        }


def _feature_matrix(
    name: str, features: list[str], derived: Mapping[str, DerivedFeature], rows: pd.DataFrame
) -> np.ndarray:
    unknown = [f for f in features if f not in rows and f not in derived]
    if unknown:
        raise DataError(f"detector '{name}': the data has no column for tag(s) {', '.join(unknown)}")
    try:
        return feature_table(rows, features, derived)
    except DataError as error:
        raise DataError(f"detector '{name}': {error.message}") from None


def envelope(X: np.ndarray, quantile: float, margin: float | np.ndarray) -> tuple[list[float], list[float]]:
    """Per-column [q_lo - below*(q_hi - q_lo), q_hi + above*(q_hi - q_lo)] of the rows of X (`margin`: one for
    all columns and sides, one per column, or (columns, 2) as below/above per column)."""
    q_low, q_high = np.quantile(X, [quantile, 1.0 - quantile], axis=0)
    width = q_high - q_low
    margin = np.asarray(margin, dtype=float)
    below, above = (margin[:, 0], margin[:, 1]) if margin.ndim == 2 else (margin, margin)
    return (q_low - below * width).tolist(), (q_high + above * width).tolist()


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


def fit_detector(
    spec: DetectorSpec,
    normal_rows: pd.DataFrame,
    *,
    derived: Mapping[str, DerivedFeature] | None = None,
    seed: int = 0,
) -> Detector:
    """Fit `spec`'s Isolation Forest and envelope on known-normal, time-ordered rows; calibrate its threshold.

    `derived`: the plant's compiled derived features (PlantSpec.derived_features) for the features that
    are not tags. Rows with a missing value in the detector's features are left out. Raises DataError when a
    feature's column (or a derived feature's tag) is missing or fewer than MIN_NORMAL_ROWS complete rows
    remain.
    """
    own = {f: feature for f, feature in (derived or {}).items() if f in spec.features}
    X = _feature_matrix(spec.name, spec.features, own, normal_rows)
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
    margins = np.array([spec.margin_of(feature) for feature in spec.features])
    low, high = envelope(X, spec.envelope_quantile, margins) if spec.envelope else ([], [])
    return Detector(spec.name, list(spec.features), forest, threshold, spec.contamination, low, high, own)


@dataclass(frozen=True)
class Assessment:
    """One detector on a set of rows: what flagged each row."""

    scores: np.ndarray  # NaN where a feature is missing
    flagged: np.ndarray  # forest OR envelope OR missing feature
    forest: np.ndarray  # score > threshold
    envelope: np.ndarray  # a feature outside its envelope


def assess_rows(detector: Detector, rows: pd.DataFrame) -> Assessment:
    X = _feature_matrix(detector.name, detector.features, detector.derived, rows)
    scores, flagged, outside = detector.assess(X)
    return Assessment(scores, flagged, np.nan_to_num(scores, nan=-np.inf) > detector.threshold, outside)


def detector_flags(detector: Detector, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(scores, flagged) for every row; a row with a missing feature scores NaN and is flagged."""
    assessed = assess_rows(detector, rows)
    return assessed.scores, assessed.flagged


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
    assessed: Assessment, labels: np.ndarray, normal: np.ndarray, episode: str, *, with_auc: bool
) -> EpisodeMetrics:
    inside = labels == episode
    flagged = assessed.flagged
    hits, false_hits = int(flagged[inside].sum()), int(flagged[normal].sum())
    return EpisodeMetrics(
        rows=int(inside.sum()),
        flagged=hits,
        recall=hits / int(inside.sum()),
        precision=hits / (hits + false_hits) if hits + false_hits else None,
        auc=_auc(assessed.scores[inside], assessed.scores[normal]) if with_auc else None,
        by_forest=int(assessed.forest[inside].sum()),
        by_envelope=int(assessed.envelope[inside].sum()),
    )


def _episodes_present(labels: np.ndarray) -> list[str]:
    present = set(labels) - {""}
    return [e for e in EPISODE_TYPES if e in present] + sorted(present - set(EPISODE_TYPES))


def evaluate_gate(
    detectors: dict[str, Detector], rows: pd.DataFrame, checks: Mapping[str, np.ndarray] | None = None
) -> GateMetrics:
    """Evaluate each detector and the gate on labelled rows (`episode`, "" = normal).

    The gate blocks a row when any detector flags it or any of `checks` ({name: one flag per row}) does:
    the recommender's own blocks besides the detectors, e.g. the sensor consistency check
    (training/calibration.py: consistency_flags; the detectors see states, the check sees a measurement
    its model disagrees with) and setpoints beyond reach (setpoints_beyond_reach). Rows flagged
    `recovering` (training/transforms.py: the plant settling after an episode) are neither normal nor an
    episode: they count in no rate.
    """
    labels = _episode_labels(rows)
    recovering = rows[RECOVERING].to_numpy(bool) if RECOVERING in rows else np.zeros(len(rows), dtype=bool)
    normal = (labels == "") & ~recovering
    episodes = _episodes_present(labels)
    empty = np.zeros(len(rows), dtype=bool)
    gate = Assessment(np.full(len(rows), np.nan), empty.copy(), empty.copy(), empty.copy())
    per_detector = {}
    for name, detector in detectors.items():
        assessed = assess_rows(detector, rows)
        gate.flagged[:] |= assessed.flagged
        gate.forest[:] |= assessed.forest
        gate.envelope[:] |= assessed.envelope
        per_detector[name] = DetectorMetrics(
            name=name,
            threshold=detector.threshold,
            contamination=detector.contamination,
            false_alarm_rate=_share(assessed.flagged[normal]),
            by_episode={e: _episode_metrics(assessed, labels, normal, e, with_auc=True) for e in episodes},
            forest_false_alarm_rate=_share(assessed.forest[normal]),
            envelope_false_alarm_rate=_share(assessed.envelope[normal]),
        )
    checks = dict(checks or {})
    for flags in checks.values():
        gate.flagged[:] |= flags
    by_episode = {e: _episode_metrics(gate, labels, normal, e, with_auc=False) for e in episodes}
    process = np.isin(labels, PROCESS_EPISODES)
    return GateMetrics(
        recall=_share(gate.flagged[process]),
        recall_by_episode={e: m.recall for e, m in by_episode.items()},
        false_alarm_rate=_share(gate.flagged[normal]),
        n_rows=len(rows),
        n_normal=int(normal.sum()),
        n_recovering=int(recovering.sum()),
        by_episode=by_episode,
        detectors=per_detector,
        check_false_alarm_rate={name: _share(flags[normal]) for name, flags in checks.items()},
        check_recall_by_episode={
            name: {e: float(flags[labels == e].mean()) for e in episodes} for name, flags in checks.items()
        },
    )


def setpoints_beyond_reach(spec: PlantSpec, rows: pd.DataFrame) -> np.ndarray:
    """Rows with a setpoint outside its bounds by more than its max_move: one move cannot bring it back, so
    the recommender blocks them (optimizer/problem.py: setpoint_box). An operating point an
    air-compressor limit drags far below its off-gas O2 bounds is not one to recommend from."""
    flags = np.zeros(len(rows), dtype=bool)
    for tag in spec.setpoints:
        if tag in rows:
            low, high = spec.tags[tag].reach
            values = rows[tag].to_numpy(float)
            flags |= (values < low) | (values > high)
    return flags

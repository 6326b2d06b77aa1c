"""Drift statistics: training baselines and the comparison of a window of data against them.

(Their Model Monitor file shapes: dragon/model_monitor.py; the report for people:
dragon/drift_report.py; the plots: dragon/drift_plots.py.)

A baseline freezes, per feature, what training saw: completeness, moments, range and
quantile bins. A window (captured requests, or any table of plant states) is judged
against it per feature with

* PSI on the baseline's frozen bins, corrected for its small-sample bias: under no drift
  the expected PSI of a window of n rows on k bins is about (k - 1)/n (PSI ~ chi2_{k-1}/n),
  0.045 at 200 rows and 10 bins, so the raw value would read as drift on small windows.
  We report `psi` = max(0, raw - (k-1)/n - (k-1)/n_baseline) and keep `psi_raw`;
* the Kolmogorov–Smirnov distance, approximated from what the baseline keeps: the baseline's
  CDF is known exactly at its bin edges (the cumulative bin fractions), so the distance is
  the largest gap between it and the window's ECDF over those edges. With deciles that is
  the maximum over 9 points, a lower bound of the true two-sample distance that is tight
  for location and scale shifts (their largest gap sits near the middle quantiles);
* the shift of the mean in training standard deviations, the most powerful check for what a
  disturbance usually does (move), when only a few dozen independent draws are at hand;
* completeness and range checks (outside the baseline's [min, max] widened by a margin, or
  outside the tag's valid range).

Decision rule (status per feature). Alert when the effect is large enough to matter *and*
cannot be sampling noise: corrected PSI >= psi_alert, or KS > max(ks_alert, c/sqrt(n_eff))
with c the 0.1 % critical value of the Kolmogorov distribution, or |shift| >= shift_alert
with z = |shift| / sqrt(1/n_eff + 1/n_eff_baseline) above the 0.1 % normal critical value
(3.29). Each status says which check set it (`FeatureDrift.basis`). The effect-size thresholds
keep irrelevant shifts quiet on big windows (a p-value test flags a 0.1-sd shift at 2000
rows); the significance floor keeps small windows quiet. Warn when corrected PSI >=
psi_warn or KS > ks_alert without significance. Windows under `min_rows` are not judged.
Every alert and every data-quality failure is a violation; `drift` = any violation.

Sample sizes are effective ones. Minute data of a plant are autocorrelated over days (load
segments, weekly setpoints, fouling), so the baseline stores its batch-means effective sample
size (a training year holds a few dozen independent operating points for some features) and
the time it spans. A window's effective size is its own batch-means estimate, capped by what
the baseline accrues per hour times the window's span: a window shorter than a regime cannot
see that regime's persistence in its own batch means, and would otherwise judge 8 hours of one
operating point as hundreds of draws and alarm whenever that point differs from the training
marginal. With the cap, a short window can only alert on a feature that varies quickly; a slow
feature (cooling water, a fouling indicator) needs a window spanning its regimes, or trips the
range check, or shows up as model error (deploy/monitoring.py).

Roles (from the plant spec's tags): setpoints are judged by the range check only. The
optimizer moves them on purpose, so a new setpoint distribution is the product working, not
drift; a setpoint outside the range training saw means the models extrapolate, which is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dragon.errors import DataError
from dragon.spec import DriftSettings, Tag

RANGE_MARGIN = 0.1  # widen the baseline [min, max] by this share of its span on each side
RANGE_TOLERANCE = 0.01  # share of a window's values allowed outside the range before a violation
COMPLETENESS_TOLERANCE = 0.05  # allowed drop of completeness below the baseline's
KS_CRITICAL = 1.949  # Kolmogorov distribution: P(sqrt(n) D > 1.949) = 0.001 under no drift
Z_CRITICAL = 3.29  # standard normal: P(|Z| > 3.29) = 0.001 under no shift
NOISE_LEVEL = 0.001  # per-feature false-alarm level of the significance floors
BATCH_BLOCKS = 20  # contiguous blocks for the batch-means effective sample size

# Model Monitor's constraint_check_type values; `range_check` is our extension (BYOC may add types).
DRIFT_CHECK = "baseline_drift_check"
COMPLETENESS_CHECK = "completeness_check"
MISSING_COLUMN_CHECK = "missing_column_check"
RANGE_CHECK = "range_check"


def _json_float(value: float) -> float | str:
    """JSON has no infinity: write it as the string Python's float() reads back."""
    return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


@dataclass(frozen=True)
class FeatureBaseline:
    """What training saw of one feature; `bin_edges` start at -inf and end at +inf."""

    tag: str
    n: int
    completeness: float
    mean: float
    std: float
    min: float
    max: float
    bin_edges: tuple[float, ...]
    bin_fractions: tuple[float, ...]
    n_effective: float = 0.0  # independent-sample equivalent of `n` (batch means); 0 = unknown = n
    span_hours: float = 0.0  # time the training rows span; 0 = unknown (no cap on a window's information)

    @property
    def information(self) -> float:
        return self.n_effective or float(self.n)

    def bin_indices(self, values: np.ndarray) -> np.ndarray:
        """Bin i holds bin_edges[i] <= x < bin_edges[i+1] (ties go right, as at training)."""
        return np.searchsorted(np.asarray(self.bin_edges[1:-1]), values, side="right")

    @property
    def edge_cdf(self) -> np.ndarray:
        """The baseline's P(X < edge) at each interior bin edge."""
        return np.cumsum(self.bin_fractions)[:-1]

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["bin_edges"] = [_json_float(edge) for edge in self.bin_edges]
        raw["bin_fractions"] = list(self.bin_fractions)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureBaseline:
        try:
            return cls(
                tag=str(raw["tag"]),
                n=int(raw["n"]),
                completeness=float(raw["completeness"]),
                mean=float(raw["mean"]),
                std=float(raw["std"]),
                min=float(raw["min"]),
                max=float(raw["max"]),
                bin_edges=tuple(float(edge) for edge in raw["bin_edges"]),
                bin_fractions=tuple(float(share) for share in raw["bin_fractions"]),
                n_effective=float(raw.get("n_effective", 0.0)),
                span_hours=float(raw.get("span_hours", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"baseline of '{raw.get('tag', '?')}': missing or bad key ({error})") from None


def numeric_column(frame: pd.DataFrame, tag: str) -> np.ndarray:
    """The column as floats; anything unreadable (text, None, inf) becomes NaN = missing."""
    values = pd.to_numeric(frame[tag], errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def time_span_hours(frame: pd.DataFrame, time_column: str | None = None) -> float:
    """Hours a table's rows span (last - first + one median step); 0 when it has no time column.

    Without `time_column`, the table's datetime column is used when it has exactly one."""
    if time_column is None:
        found = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)]
        time_column = found[0] if len(found) == 1 else None
    if time_column is None or time_column not in frame.columns or len(frame) < 2:
        return 0.0
    times = pd.to_datetime(frame[time_column], utc=True).dropna().sort_values()
    if len(times) < 2:
        return 0.0
    steps = times.diff().dropna()
    return float((times.iloc[-1] - times.iloc[0] + steps.median()) / pd.Timedelta(hours=1))


def compute_baselines(
    frame: pd.DataFrame, tags: list[str], bins: int = 10, time_column: str | None = None
) -> dict[str, FeatureBaseline]:
    """Freeze per-feature statistics and quantile bins of a training table (rows in time order)."""
    missing = [tag for tag in tags if tag not in frame.columns]
    if missing:
        raise DataError(f"training data has no column for {missing}: cannot compute drift baselines")
    span = time_span_hours(frame, time_column)
    baselines = {}
    for tag in tags:
        values = numeric_column(frame, tag)
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise DataError(f"training data column '{tag}' has no numeric value: cannot compute its baseline")
        interior, counts = _quantile_bins(present, bins)
        edges = (-math.inf, *(float(edge) for edge in interior), math.inf)
        baselines[tag] = FeatureBaseline(
            tag=tag,
            n=int(present.size),
            completeness=float(present.size / len(values)) if len(values) else 0.0,
            mean=float(present.mean()),
            std=float(present.std(ddof=1)) if present.size > 1 else 0.0,
            min=float(present.min()),
            max=float(present.max()),
            bin_edges=edges,
            bin_fractions=tuple(float(c) for c in counts / present.size),
            n_effective=distribution_sample_size(present, interior),
            span_hours=span,
        )
    return baselines


def effective_sample_size(values: np.ndarray, blocks: int = BATCH_BLOCKS) -> float:
    """How many independent rows `values` (in time order) are worth, by batch means:
    n_eff = n var(x) / (m var(block means)) over `blocks` contiguous blocks of m rows.

    Minute data of a plant are far from independent: a setpoint held for a week or a load
    held for ten days makes a year of rows worth a few dozen draws. Both the noise floor of
    PSI and KS and the baseline's own uncertainty scale with n_eff, not n; iid rows give n."""
    n = values.size
    if n < 2 * blocks:
        return float(n)
    size = n // blocks
    if values.min() == values.max():
        return 1.0  # a constant: one observation, repeated
    spread = float(values.var())
    block_means = values[: size * blocks].reshape(blocks, size).mean(axis=1)
    between = float(block_means.var(ddof=1))
    if between == 0.0:
        return float(n)
    return float(min(n, max(1.0, n * spread / (size * between))))


def distribution_sample_size(values: np.ndarray, edges: np.ndarray) -> float:
    """The effective sample size of what PSI and KS look at: the smallest batch-means size of the
    values and of each indicator `values < edge`. Regimes of spread (a tag calm for weeks, then
    bursty) barely move the block means of the values but do move those of the outer
    indicators; an indicator constant over the rows says nothing about persistence and is skipped."""
    sizes = [effective_sample_size(values)]
    for edge in np.asarray(edges, dtype=float):
        below = (values < edge).astype(float)
        if 0.0 < below.mean() < 1.0:
            sizes.append(effective_sample_size(below))
    return float(min(sizes))


def _quantile_bins(present: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Interior edges at the quantiles, deduplicated (a setpoint held for a shift has few values),
    then merged until no bin is empty: an always-empty training bin would add PSI to every window."""
    interior = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    while True:
        counts = np.bincount(np.searchsorted(interior, present, side="right"), minlength=interior.size + 1)
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0:
            return interior, counts
        # drop the edge that closes the empty bin from the left (the first bin has only a right edge)
        interior = np.delete(interior, max(empty[0] - 1, 0))


@dataclass(frozen=True)
class FeatureDrift:
    psi: float | None
    ks: float | None
    completeness: float
    out_of_range: float  # share of present values outside the widened baseline or valid range
    status: str  # ok | warn | alert | insufficient
    psi_raw: float | None = None
    window_fractions: tuple[float, ...] = ()
    check: str = "distribution"  # what sets the status: distribution (PSI/KS/shift) or range (setpoints)
    shift: float | None = None  # (window mean - training mean) / training sd
    basis: str = ""  # in words, which check (with which figures) set the status

    def to_dict(self) -> dict[str, Any]:
        rounded = {
            k: (None if v is None else round(v, 6))
            for k, v in (("psi", self.psi), ("ks", self.ks), ("psi_raw", self.psi_raw), ("shift", self.shift))
        }
        return {
            **rounded,
            "completeness": round(self.completeness, 6),
            "out_of_range": round(self.out_of_range, 6),
            "status": self.status,
            "check": self.check,
            "basis": self.basis,
        }


@dataclass(frozen=True)
class Violation:
    feature: str
    kind: str  # a Model Monitor constraint_check_type (or range_check)
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "kind": self.kind, "description": self.description}


@dataclass(frozen=True)
class DriftReport:
    drift: bool
    window_rows: int
    features: dict[str, FeatureDrift]
    violations: list[Violation] = field(default_factory=list)
    verdict: str = ""

    @property
    def alerting(self) -> list[str]:
        return [tag for tag, feature in self.features.items() if feature.status == "alert"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "window_rows": self.window_rows,
            "features": {tag: feature.to_dict() for tag, feature in self.features.items()},
            "violations": [violation.to_dict() for violation in self.violations],
        }


def population_stability_index(
    baseline: FeatureBaseline, window_fractions: np.ndarray, n_window: int
) -> float:
    """Raw PSI on the frozen bins. Empty bins are floored at half a count of their sample
    (a continuity correction) so one empty bin cannot dominate a small window."""
    expected = np.maximum(np.asarray(baseline.bin_fractions), 0.5 / max(baseline.n, 1))
    actual = np.maximum(window_fractions, 0.5 / max(n_window, 1))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _psi_noise(bins: int, n_window: float, n_baseline: float) -> tuple[float, float]:
    """PSI of two samples of one distribution is about chi2_{k-1} (1/n + 1/m): its mean
    (the bias we subtract) and its 1 - NOISE_LEVEL quantile (the significance floor)."""
    from scipy.stats import chi2

    scale = 1.0 / n_window + 1.0 / n_baseline
    return (bins - 1) * scale, float(chi2.ppf(1.0 - NOISE_LEVEL, max(bins - 1, 1))) * scale


def _ks_floor(n_window: float, n_baseline: float) -> float:
    """Smallest KS distance that is not sampling noise at the NOISE_LEVEL."""
    return KS_CRITICAL * math.sqrt(1.0 / n_window + 1.0 / n_baseline)


def _feature_drift(
    baseline: FeatureBaseline,
    values: np.ndarray,
    settings: DriftSettings,
    valid: tuple[float, float] | None,
    *,
    range_only: bool = False,
    bounds: tuple[float, float] | None = None,
    window_hours: float = 0.0,
) -> FeatureDrift:
    present = values[~np.isnan(values)]
    completeness = float(present.size / len(values)) if len(values) else 0.0
    span = baseline.max - baseline.min
    low, high = baseline.min - RANGE_MARGIN * span, baseline.max + RANGE_MARGIN * span
    if valid is not None:
        low, high = max(low, valid[0]), min(high, valid[1])
    outside = float(np.mean((present < low) | (present > high))) if present.size else 0.0
    check = "range" if range_only else "distribution"
    if present.size < settings.min_rows:
        basis = f"{present.size} values < min_rows {settings.min_rows}"
        return FeatureDrift(None, None, completeness, outside, "insufficient", check=check, basis=basis)
    counts = np.bincount(baseline.bin_indices(present), minlength=len(baseline.bin_fractions))
    fractions = counts / present.size
    psi_raw = population_stability_index(baseline, fractions, present.size)
    n_window = distribution_sample_size(present, np.asarray(baseline.bin_edges[1:-1]))
    if baseline.span_hours > 0 and window_hours > 0:
        # no more independent draws than the baseline accrues over the window's span (module docstring)
        n_window = min(n_window, max(1.0, baseline.information * window_hours / baseline.span_hours))
    bias, psi_floor = _psi_noise(len(baseline.bin_fractions), n_window, baseline.information)
    psi = max(0.0, psi_raw - bias)
    window_cdf = np.cumsum(fractions)[:-1]
    ks = float(np.max(np.abs(window_cdf - baseline.edge_cdf))) if window_cdf.size else 0.0
    ks_floor = _ks_floor(n_window, baseline.information)
    shift = float((present.mean() - baseline.mean) / baseline.std) if baseline.std > 0 else 0.0
    shift_floor = Z_CRITICAL * math.sqrt(1.0 / n_window + 1.0 / baseline.information)
    fired = {
        "PSI": (
            psi >= settings.psi_alert,
            psi_raw > psi_floor,
            f"PSI {psi:.3f} (alert at {settings.psi_alert})",
        ),
        "KS": (ks > settings.ks_alert, ks > ks_floor, f"KS {ks:.3f} (alert above {settings.ks_alert})"),
        "shift": (
            abs(shift) >= settings.shift_alert,
            abs(shift) > shift_floor,
            f"mean shift {shift:+.2f} sd (alert at {settings.shift_alert:g})",
        ),
    }
    large = [text for big, _, text in fired.values() if big]
    alerting = [text for big, significant, text in fired.values() if big and significant]
    noise = (
        f"within sampling noise at about {n_window:.0f} independent window draws "
        f"(noise floors: PSI {psi_floor:.2f}, KS {ks_floor:.2f}, shift {shift_floor:.2f} sd)"
    )
    shares = tuple(float(f) for f in fractions)
    if range_only:
        # Setpoints move by design (operators redraw them, the optimizer moves them): leaving the
        # training range is a warning (the anomaly gate judges single states), only leaving the
        # equipment bounds is a violation; `out_of_range` then counts values outside the bounds.
        low_bound, high_bound = bounds if bounds is not None else (low, high)
        outside_bounds = float(np.mean((present < low_bound) | (present > high_bound)))
        status = (
            "alert" if outside_bounds > RANGE_TOLERANCE else ("warn" if outside > RANGE_TOLERANCE else "ok")
        )
        basis = (
            f"setpoint: judged by range only; {outside_bounds:.1%} outside the equipment bounds, "
            f"{outside:.1%} outside the training range"
        )
        return FeatureDrift(
            psi, ks, completeness, outside_bounds, status, psi_raw, shares, check, shift, basis
        )
    if alerting:
        status, basis = "alert", "; ".join(alerting) + ", beyond sampling noise"
    elif large or psi >= settings.psi_warn:
        status = "warn"
        basis = "; ".join(large or [f"PSI {psi:.3f} (warn at {settings.psi_warn})"]) + ", but " + noise
    else:
        status, basis = "ok", "every check below its alert level"
    return FeatureDrift(psi, ks, completeness, outside, status, psi_raw, shares, check, shift, basis)


def _violations(tag: str, baseline: FeatureBaseline, feature: FeatureDrift, unit: str) -> list[Violation]:
    found = []
    if feature.status == "alert" and feature.check == "distribution":
        found.append(
            Violation(
                tag,
                DRIFT_CHECK,
                f"distribution differs from training: {feature.basis}",
            )
        )
    floor = baseline.completeness - COMPLETENESS_TOLERANCE
    if feature.completeness < floor:
        found.append(
            Violation(
                tag,
                COMPLETENESS_CHECK,
                (
                    f"completeness {feature.completeness:.1%} is below the baseline's "
                    f"{baseline.completeness:.1%} "
                    f"minus {COMPLETENESS_TOLERANCE:.0%}"
                ),
            )
        )
    if feature.out_of_range > RANGE_TOLERANCE:
        where = (
            "the setpoint's equipment bounds"
            if feature.check == "range"
            else f"the training range {f'[{baseline.min:.4g}, {baseline.max:.4g}] {unit}'.rstrip()} "
            f"(+{RANGE_MARGIN:.0%} margin) or the tag's valid range"
        )
        found.append(Violation(tag, RANGE_CHECK, f"{feature.out_of_range:.1%} of values lie outside {where}"))
    return found


def analyse_drift(
    baselines: dict[str, FeatureBaseline],
    window: pd.DataFrame,
    settings: DriftSettings,
    tags: dict[str, Tag] | None = None,
    time_column: str | None = None,
) -> DriftReport:
    """Judge a window against the baselines (see the module docstring for the rule).

    `tags` (the plant spec's tags) adds each tag's valid range to the range check and marks the
    setpoints, which are judged by range only. `time_column` (default: the window's only datetime
    column) gives the window's span, which caps its effective sample size.
    """
    rows = len(window)
    if rows < settings.min_rows:
        features = {tag: FeatureDrift(None, None, 0.0, 0.0, "insufficient") for tag in baselines}
        verdict = f"window too small to judge ({rows} rows < {settings.min_rows})"
        return DriftReport(False, rows, features, [], verdict)
    features: dict[str, FeatureDrift] = {}
    violations: list[Violation] = []
    window_hours = time_span_hours(window, time_column)
    for tag, baseline in baselines.items():
        if tag not in window.columns:
            features[tag] = FeatureDrift(None, None, 0.0, 0.0, "insufficient")
            violations.append(Violation(tag, MISSING_COLUMN_CHECK, "column is missing from the window"))
            continue
        valid = tags[tag].valid if tags and tag in tags else None
        range_only = bool(tags and tag in tags and tags[tag].role == "setpoint")
        feature = _feature_drift(
            baseline,
            numeric_column(window, tag),
            settings,
            valid,
            range_only=range_only,
            bounds=tags[tag].bounds if range_only else None,
            window_hours=window_hours,
        )
        features[tag] = feature
        violations.extend(_violations(tag, baseline, feature, tags[tag].unit if tags and tag in tags else ""))
    return DriftReport(bool(violations), rows, features, violations, _verdict(features, violations))


def _verdict(features: dict[str, FeatureDrift], violations: list[Violation]) -> str:
    if not violations:
        warned = [tag for tag, feature in features.items() if feature.status == "warn"]
        return "no drift" + (f" (watch: {', '.join(warned)})" if warned else "")
    alerting = [tag for tag, feature in features.items() if feature.status == "alert"]
    parts = [f"{len(violations)} violation(s)"]
    if alerting:
        parts.append(f"drift in {', '.join(alerting)}")
    return "drift: " + "; ".join(parts)

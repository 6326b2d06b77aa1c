"""Hold-out evaluation of a plant GAM and the plots an engineer looks at to trust it.

Metrics are on the hold-out period (time-ordered, never seen in fitting): RMSE, MAE and R² against the
measured target; R² against the simulator's noise-free target (truth_column) when a truth frame is given;
the share of measured targets inside the 95 % prediction interval (about 0.95 for a well-specified model).

Plots use matplotlib's object API on the Agg canvas (no pyplot state, no display), small and quick:
one partial-dependence PNG per term (spline terms with their 95 % confidence band, tensor terms as a
filled contour map), each centred on zero over its plotted range (a GAM term's level is arbitrary: the
intercept absorbs it, so only its shape, and how much it moves the target, mean anything), and one of
hold-out residuals over time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dragon.errors import DataError
from dragon.spec import GamModel

INTERVAL_WIDTH = 0.95
FIGSIZE = (5.0, 3.2)
DPI = 90
GRID_POINTS = 100  # points along a spline term's feature
MESH_POINTS = 40  # points along each axis of a tensor term's map


@dataclass(frozen=True)
class GamMetrics:
    rmse: float
    mae: float
    r2: float
    r2_truth: float | None  # against the noise-free target, see truth_column (None without a truth frame)
    n_rows: int
    interval_coverage: float  # share of hold-out targets inside the 95 % prediction interval
    # RMSE on the same rows fed the measured inputs instead (equal to rmse for a static model): the
    # reference for a live check on single states, which have no lagged inputs (deploy/monitoring.py).
    rmse_measured_inputs: float
    # share of hold-out rows with an input outside the range the GAM was fitted on: R² there measures
    # extrapolation (a narrow 90-day history often meets a new load, season or fouling state)
    extrapolated_share: float
    # RMSE of naive persistence on the same rows: the target predicted by its own measured value one
    # response time (`lag_hours`, at least one row step) earlier. The model must beat the guess "it stays
    # where it was" to be worth its inputs (None: too few rows with a measured value that far back).
    rmse_persistence: float | None = None

    @property
    def rmse_ratio(self) -> float | None:
        """Hold-out RMSE / persistence RMSE (below 1: the model beats persistence)."""
        return self.rmse / self.rmse_persistence if self.rmse_persistence else None

    def to_dict(self) -> dict:
        return asdict(self) | {"rmse_ratio": self.rmse_ratio}


def _rms(residual: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residual**2))) if residual.size else float("nan")


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - predicted) ** 2).sum()) / total if total > 0 else float("nan")


def _holdout_arrays(
    name: str, model: GamModel, holdout: pd.DataFrame, inputs: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, kept) of the complete hold-out rows; `kept` marks them among all rows."""
    needed = dict.fromkeys([*inputs, *model.features, model.target])
    missing = [column for column in needed if column not in holdout]
    if missing:
        raise DataError(f"model '{name}': the hold-out rows have no column for {', '.join(missing)}")
    X = holdout[inputs].to_numpy(dtype=float)
    y = holdout[model.target].to_numpy(dtype=float)
    kept = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if not kept.any():
        raise DataError(f"model '{name}': no complete hold-out rows of {inputs} and '{model.target}'")
    return X[kept], y[kept], kept


def truth_column(model: GamModel) -> str:
    """The noise-free value of what the model predicts on a hold-out row: for a lag-compensated model
    the measured target without its noise (`<target>_lagged`), for a static one the steady state."""
    return f"{model.target}_lagged" if model.lag_hours > 0 else f"{model.target}_true"


def evaluate_gam(
    name: str,
    model: GamModel,
    gam,
    holdout: pd.DataFrame,
    holdout_truth: pd.DataFrame | None,
    inputs: list[str],
) -> GamMetrics:
    """Hold-out metrics of a fitted GAM fed the hold-out columns `inputs` (dragon/dynamics.py:
    model_inputs). `holdout_truth` is row-aligned with `holdout`."""
    X, y, kept = _holdout_arrays(name, model, holdout, inputs)
    predicted = gam.predict(X)
    residual = y - predicted
    residual_measured_inputs = residual
    if inputs != model.features:  # lag-compensated: predict again from the measured inputs
        measured_inputs = holdout.loc[kept, model.features].to_numpy(dtype=float)
        complete = np.isfinite(measured_inputs).all(axis=1)
        residual_measured_inputs = y[complete] - gam.predict(measured_inputs[complete])
    bounds = gam.prediction_intervals(X, width=INTERVAL_WIDTH)
    r2_truth = None
    truth_name = truth_column(model)
    if holdout_truth is not None and truth_name in holdout_truth:
        if len(holdout_truth) != len(holdout):
            raise DataError(
                f"model '{name}': the truth frame has {len(holdout_truth)} rows, "
                f"the hold-out {len(holdout)}; they must be row-aligned"
            )
        truth = holdout_truth[truth_name].to_numpy(dtype=float)[kept]
        known = np.isfinite(truth)
        r2_truth = _r2(truth[known], predicted[known]) if known.any() else None
    return GamMetrics(
        rmse_persistence=persistence_rmse(holdout.loc[kept], model.target, model.lag_hours),
        rmse=_rms(residual),
        mae=float(np.mean(np.abs(residual))),
        r2=_r2(y, predicted),
        r2_truth=r2_truth,
        n_rows=len(y),
        interval_coverage=float(np.mean((y >= bounds[:, 0]) & (y <= bounds[:, 1]))),
        rmse_measured_inputs=_rms(residual_measured_inputs),
        extrapolated_share=float(outside_fitted_range(gam, X).mean()),
    )


MIN_PERSISTENCE_ROWS = 10  # fewer matched pairs say nothing about the naive forecast


def persistence_rmse(rows: pd.DataFrame, target: str, hours: float) -> float | None:
    """RMSE of predicting each row's `target` by its value `hours` earlier (at least one row step), taken
    from the latest row at most one step older than that; rows without one are left out."""
    times, _ = _time_axis(rows)
    if not pd.api.types.is_datetime64_any_dtype(times) or len(rows) < 2:
        return None
    frame = pd.DataFrame({"time": pd.to_datetime(times).to_numpy(), "y": rows[target].to_numpy(float)})
    step = frame["time"].diff().median()
    horizon = max(pd.Timedelta(hours=hours), step)
    earlier = frame.rename(columns={"y": "y_earlier"})
    asked = frame.assign(time=frame["time"] - horizon).sort_values("time")
    paired = pd.merge_asof(asked, earlier, on="time", direction="backward", tolerance=step).dropna()
    if len(paired) < MIN_PERSISTENCE_ROWS:
        return None
    return _rms((paired["y"] - paired["y_earlier"]).to_numpy())


def outside_fitted_range(gam, X: np.ndarray) -> np.ndarray:
    """(n,) True where a row of X has a feature outside the range the GAM's splines were fitted on
    (pygam keeps each spline term's data range as `edge_knots_`)."""
    outside = np.zeros(len(X), dtype=bool)
    for term in gam.terms:
        if term.isintercept or term.istensor:
            continue  # a tensor term's margins repeat the spline terms' ranges
        low, high = term.edge_knots_
        column = X[:, term.feature]
        outside |= (column < low) | (column > high)
    return outside


def _label(tag: str, units: Mapping[str, str] | None) -> str:
    unit = (units or {}).get(tag, "")
    return f"{tag} [{unit}]" if unit else tag


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def plot_partial_dependence(
    name: str, model: GamModel, gam, out_dir: str | Path, *, units: Mapping[str, str] | None = None
) -> list[Path]:
    """One PNG per term of the GAM in `out_dir`: `<name>-pd-<feature>.png` / `<name>-pd-<f1>-x-<f2>.png`.

    `units` maps tags to units for the axis labels (e.g. `{t: tag.unit for t, tag in spec.tags.items()}`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    effect = f"effect on {_label(model.target, units)}, centred"
    paths = []
    for index, term in enumerate(gam.terms):
        if term.isintercept:
            continue
        tags = [model.features[int(i)] for i in np.atleast_1d(term.feature)]
        figure = Figure(figsize=FIGSIZE)
        axes = figure.add_subplot()
        if term.istensor:
            grid = gam.generate_X_grid(term=index, n=MESH_POINTS, meshgrid=True)
            surface = gam.partial_dependence(term=index, X=grid, meshgrid=True)
            surface = surface - np.mean(surface)
            filled = axes.contourf(grid[0], grid[1], surface, levels=14, cmap="RdBu_r")
            figure.colorbar(filled, ax=axes, label=effect)
            axes.set_ylabel(_label(tags[1], units))
        else:
            x, line, band = centred_term(gam, index)
            axes.fill_between(x, band[:, 0], band[:, 1], color="tab:blue", alpha=0.25, label="95 % band")
            axes.plot(x, line, color="tab:blue")
            axes.set_ylabel(effect)
            axes.legend(loc="best", fontsize="small", frameon=False)
        axes.set_xlabel(_label(tags[0], units))
        axes.set_title(f"{name}: {' × '.join(tags)}", fontsize="medium")
        paths.append(_save(figure, out / f"{name}-pd-{'-x-'.join(tags)}.png"))
    return paths


def centred_term(gam, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, effect, 95 % band (n, 2)) of spline term `index` over its fitted range, centred so that the
    mean effect over the range is zero."""
    grid = gam.generate_X_grid(term=index, n=GRID_POINTS)
    line, band = gam.partial_dependence(term=index, X=grid, width=INTERVAL_WIDTH)
    level = np.mean(line)
    return grid[:, gam.terms[index].feature], line - level, band - level


def _time_axis(holdout: pd.DataFrame) -> tuple[np.ndarray | pd.Series, str]:
    """The first datetime column of the hold-out rows, else the row number."""
    for column in holdout.columns:
        if pd.api.types.is_datetime64_any_dtype(holdout[column]):
            return holdout[column], column
    return np.arange(len(holdout)), "hold-out row"


def plot_residuals(
    name: str,
    model: GamModel,
    gam,
    holdout: pd.DataFrame,
    out_dir: str | Path,
    *,
    inputs: list[str],
    units: Mapping[str, str] | None = None,
) -> Path:
    """Hold-out residuals (measured - predicted) over time: `<out_dir>/<name>-residuals.png`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y, kept = _holdout_arrays(name, model, holdout, inputs)
    residual = y - gam.predict(X)
    times, time_label = _time_axis(holdout)
    times = np.asarray(times)[kept]
    figure = Figure(figsize=(7.0, 3.0))
    axes = figure.add_subplot()
    axes.plot(times, residual, ".", markersize=2, alpha=0.5, color="tab:gray")
    if len(residual) >= 12:  # a rolling mean shows slow drift that single points hide
        smooth = pd.Series(residual).rolling(max(len(residual) // 50, 3), center=True, min_periods=1).mean()
        axes.plot(times, smooth.to_numpy(), color="tab:red", linewidth=1.2, label="rolling mean")
        axes.legend(loc="best", fontsize="small", frameon=False)
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel(time_label)
    axes.set_ylabel(f"residual {_label(model.target, units)}")
    axes.set_title(f"{name}: hold-out residuals", fontsize="medium")
    figure.autofmt_xdate()
    return _save(figure, out / f"{name}-residuals.png")

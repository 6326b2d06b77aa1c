"""The training report: one plain HTML page with every model's metrics and plots, the gate and the data.

Images are referenced by paths relative to the page, so the report folder can be copied (or logged as an
MLflow artifact directory) as a whole. No JavaScript; a little inline CSS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from training.detectors import GateMetrics
from training.evaluation import INTERVAL_WIDTH, GamMetrics
from training.gam_fit import GamFit

REPORT_FILE = "training_report.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
.plots img { max-width: 32%; margin: .2em; border: 1px solid #eee; }
.plots img.wide { max-width: 64%; }
.muted { color: #777; }
"""


def _number(value) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _percent(value: float | None) -> str:
    return '<span class="muted">–</span>' if value is None else f"{value:.1%}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, out_dir: Path) -> str:
    relative = Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()
    wide = ' class="wide"' if path.name.endswith("-residuals.png") else ""
    return f'<img src="{escape(relative)}" alt="{escape(path.stem)}"{wide}>'


COVERAGE_TOLERANCE = 0.05  # |coverage - nominal| beyond this is flagged
EXTRAPOLATION_LIMIT = 0.05  # a larger share of hold-out rows outside the fitted range is flagged


def model_flags(metrics: GamMetrics) -> list[str]:
    """Why a model's hold-out figures deserve a second look, in words (empty: none)."""
    flags = []
    if abs(metrics.interval_coverage - INTERVAL_WIDTH) > COVERAGE_TOLERANCE:
        flags.append(f"coverage {metrics.interval_coverage:.0%}, nominal {INTERVAL_WIDTH:.0%}")
    if metrics.extrapolated_share > EXTRAPOLATION_LIMIT:
        flags.append(f"{metrics.extrapolated_share:.0%} of rows extrapolated")
    return flags


def _models_section(
    gam_metrics: Mapping[str, GamMetrics],
    gam_fits: Mapping[str, GamFit],
    plots: Mapping[str, list[Path]],
    out_dir: Path,
) -> str:
    header = [
        "model",
        "RMSE",
        "MAE",
        "R²",
        "R² vs truth",
        "95 % interval coverage",
        "hold-out rows",
        "outside the fitted range",
        "flag",
    ]
    rows = [
        [
            escape(name),
            _number(m.rmse),
            _number(m.mae),
            _number(m.r2),
            _number(m.r2_truth),
            _percent(m.interval_coverage),
            _number(m.n_rows),
            _percent(m.extrapolated_share),
            "; ".join(model_flags(m)) or "-",
        ]
        for name, m in gam_metrics.items()
    ]
    parts = ["<h2>Models (hold-out period)</h2>", _table(header, rows)]
    parts.append(
        f"<p>flag: interval coverage more than {COVERAGE_TOLERANCE:.0%} from the nominal "
        f"{INTERVAL_WIDTH:.0%} (the intervals are too narrow or too wide on new data), or more than "
        f"{EXTRAPOLATION_LIMIT:.0%} of hold-out rows outside the fitted range (the figures there measure "
        "extrapolation). Partial-dependence plots are centred: each term's mean effect over its range is "
        "zero.</p>"
    )
    parts.append(
        "<p>Basis: the spec's n_splines is the largest basis; on a short history it is lowered until there "
        "are 3 training rows per coefficient, and the smoothing penalties (chosen by blocked "
        "cross-validation) decide how much of it is used: the effective degrees of freedom (edof).</p>"
    )
    parts.append(
        _table(
            ["model", "n_splines", "coefficients", "edof", "training rows", "rows per edof"],
            [
                [
                    escape(name),
                    _number(fit.n_splines),
                    _number(int(fit.gam.terms.n_coefs)),
                    _number(fit.edof),
                    _number(fit.n_rows),
                    _number(fit.n_rows / fit.edof),
                ]
                for name, fit in gam_fits.items()
            ],
        )
    )
    for name in gam_metrics:
        images = sorted(plots.get(name, []), key=lambda p: not p.name.endswith("-residuals.png"))
        parts.append(f'<h3 id="model-{escape(name)}">{escape(name)}</h3>')
        parts.append('<div class="plots">' + "".join(_image(p, out_dir) for p in images) + "</div>")
    return "\n".join(parts)


def _gate_section(gate: GateMetrics) -> str:
    parts = [
        "<h2>Anomaly gate (hold-out period)</h2>",
        "<p>A row is blocked when any detector flags it or one of the recommender's own checks would "
        "block it (sensor consistency, setpoints beyond reach). Recall is over the rows of the process "
        "episodes and novel operation; the false-alarm rate is over normal rows. Rows still recovering from "
        "an episode count in neither.</p>",
        _table(
            ["gate", "recall", "false-alarm rate", "rows", "normal rows", "recovering rows"],
            [
                [
                    "the whole gate",
                    _percent(gate.recall),
                    _percent(gate.false_alarm_rate),
                    _number(gate.n_rows),
                    _number(gate.n_normal),
                    _number(gate.n_recovering),
                ]
            ],
        ),
        _table(
            ["detector", "threshold", "contamination", "false-alarm rate"],
            [
                [escape(name), _number(d.threshold), _percent(d.contamination), _percent(d.false_alarm_rate)]
                for name, d in gate.detectors.items()
            ]
            + [
                [f"check: {escape(name)}", "", "", _percent(rate)]
                for name, rate in gate.check_false_alarm_rate.items()
            ],
        ),
    ]
    header = ["episode", "rows", "gate recall", "gate precision"]
    for name in gate.detectors:
        header += [f"{name} recall", f"{name} precision", f"{name} AUC"]
    rows = []
    for episode, metrics in gate.by_episode.items():
        row = [escape(episode), _number(metrics.rows), _percent(metrics.recall), _percent(metrics.precision)]
        for detector in gate.detectors.values():
            own = detector.by_episode[episode]
            row += [_percent(own.recall), _percent(own.precision), _number(own.auc)]
        rows.append(row)
    if rows:
        parts.append("<h3>Per episode type</h3>")
        parts.append(
            "<p class='muted'>precision = flagged episode rows / "
            "(flagged episode rows + flagged normal rows); "
            "AUC ranks episode rows' scores against normal rows' (threshold-free).</p>"
        )
        parts.append(_table(header, rows))
    return "\n".join(parts)


def _value_html(value) -> str:
    """Nested dicts become nested tables, lists become comma lists, scalars are formatted."""
    if isinstance(value, Mapping):
        if not value:
            return '<span class="muted">none</span>'
        return _table(["", ""], [[escape(str(k)), _value_html(v)] for k, v in value.items()]).replace(
            "<thead><tr><th></th><th></th></tr></thead>", ""
        )
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, Mapping) for item in value):
            return "".join(_value_html(item) for item in value)
        return escape(", ".join(str(item) for item in value)) or '<span class="muted">none</span>'
    return _number(value)


def write_training_report(
    out_dir: str | Path,
    *,
    plant_name: str,
    version: str | int | None,
    gam_metrics: Mapping[str, GamMetrics],
    gam_fits: Mapping[str, GamFit],
    gate: GateMetrics,
    data_report: Mapping,
    plots: Mapping[str, list[Path]],
) -> Path:
    """Write `<out_dir>/training_report.html` (images referenced relative to it) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"Training report: {plant_name}" + (f" version {version}" if version is not None else "")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{escape(title)}</h1><p class='muted'>written {created}</p>",
            _models_section(gam_metrics, gam_fits, plots, out),
            _gate_section(gate),
            "<h2>Data</h2>",
            _value_html(dict(data_report)),
            "</body></html>",
        ]
    )
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path

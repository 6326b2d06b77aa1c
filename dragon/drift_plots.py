"""Drift plots: one PNG per drifting feature, training against the window.

Left: the share of rows in each of the baseline's frozen bins (what PSI compares); right: the
training CDF at the bin edges and the window's ECDF (what KS compares). The x-axes are in the
tag's unit from the plant spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from dragon.drift import DriftReport, FeatureBaseline, numeric_column


def plot_drift(
    baselines: dict[str, FeatureBaseline],
    window: pd.DataFrame,
    report: DriftReport,
    out_dir: str | Path,
    units: Mapping[str, str],
) -> list[Path]:
    """One PNG per drifting (alert or warn) feature: bin fractions (what PSI sees) and the
    CDFs (what KS sees) of training and window; `units`: tag -> unit, for the x-axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for tag, feature in report.features.items():
        if feature.status not in ("alert", "warn") or tag not in window.columns:
            continue
        baseline = baselines[tag]
        values = numeric_column(window, tag)
        values = values[~np.isnan(values)]
        labels = _bin_labels(baseline)
        positions = np.arange(len(labels))
        figure, (bars, cdf) = plt.subplots(1, 2, figsize=(11, 4))
        bars.bar(positions - 0.2, baseline.bin_fractions, width=0.4, label="training")
        bars.bar(positions + 0.2, feature.window_fractions, width=0.4, label="window")
        bars.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
        axis_label = f"{tag} ({units[tag]})" if units.get(tag) else tag
        bars.set_xlabel(f"{axis_label}, training bins")
        bars.set_ylabel("share of rows")
        bars.set_title(f"{tag}: PSI {feature.psi:.3f} ({feature.status})")
        bars.legend(loc="upper right")
        interior = np.asarray(baseline.bin_edges[1:-1])
        cdf.plot(interior, baseline.edge_cdf, "o-", label="training (at bin edges)")
        cdf.plot(np.sort(values), np.arange(1, values.size + 1) / values.size, label="window ECDF")
        cdf.set_title(f"KS {feature.ks:.3f}")
        cdf.set_xlabel(axis_label)
        cdf.set_ylabel("share of rows at or below")
        cdf.legend(loc="lower right")  # "best" searches every point of a large window
        figure.tight_layout()
        path = out / f"drift_{tag}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        paths.append(path)
    return paths


def _bin_labels(baseline: FeatureBaseline) -> list[str]:
    edges = baseline.bin_edges
    last = len(edges) - 2
    return [
        f"<{edges[1]:.4g}" if i == 0 else (f"≥{edges[i]:.4g}" if i == last else f"{edges[i]:.4g}")
        for i in range(len(edges) - 1)
    ]

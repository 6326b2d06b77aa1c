"""The drift baselines and violations in SageMaker Model Monitor's file shapes.

A bundle carries `monitor/statistics.json` and `monitor/constraints.json` (written by
dragon/bundle.py) and each monitoring run writes `constraint_violations.json`, in the shapes
Model Monitor documents for bring-your-own containers, so the same files serve a Model
Monitor schedule running our image. The statistics themselves are dragon/drift.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dragon.drift import COMPLETENESS_TOLERANCE, FeatureBaseline, Violation
from dragon.spec import DriftSettings


def model_monitor_statistics(baselines: dict[str, FeatureBaseline]) -> dict[str, Any]:
    """The baselines as Model Monitor's statistics.json. The distribution is given as buckets
    (our quantile bins, outer edges closed at the observed min and max); no KLL sketch, which
    Model Monitor documents as optional for bring-your-own containers."""
    features = []
    for tag, baseline in baselines.items():
        edges = [baseline.min, *baseline.bin_edges[1:-1], baseline.max]
        num_missing = round(baseline.n / baseline.completeness) - baseline.n if baseline.completeness else 0
        features.append(
            {
                "name": tag,
                "inferred_type": "Fractional",
                "numerical_statistics": {
                    "common": {"num_present": baseline.n, "num_missing": int(num_missing)},
                    "mean": baseline.mean,
                    "sum": baseline.mean * baseline.n,
                    "std_dev": baseline.std,
                    "min": baseline.min,
                    "max": baseline.max,
                    "distribution": {
                        "kll": {
                            "buckets": [
                                {
                                    "lower_bound": lower,
                                    "upper_bound": upper,
                                    "count": round(share * baseline.n),
                                }
                                for lower, upper, share in zip(
                                    edges[:-1], edges[1:], baseline.bin_fractions, strict=True
                                )
                            ]
                        }
                    },
                },
            }
        )
    item_count = max(
        (
            f["numerical_statistics"]["common"]["num_present"]
            + f["numerical_statistics"]["common"]["num_missing"]
            for f in features
        ),
        default=0,
    )
    return {"version": 0, "dataset": {"item_count": item_count}, "features": features}


def model_monitor_constraints(
    baselines: dict[str, FeatureBaseline], settings: DriftSettings
) -> dict[str, Any]:
    """The baselines as Model Monitor's constraints.json; its distribution comparison (a KS-like
    distance against `comparison_threshold`) takes our ks_alert."""
    return {
        "version": 0,
        "features": [
            {
                "name": tag,
                "inferred_type": "Fractional",
                "completeness": max(0.0, baseline.completeness - COMPLETENESS_TOLERANCE),
                "num_constraints": {"is_non_negative": baseline.min >= 0.0},
            }
            for tag, baseline in baselines.items()
        ],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": settings.ks_alert,
                "comparison_method": "Robust",
            },
        },
    }


def constraint_violations(violations: Iterable[Violation]) -> dict[str, Any]:
    """Violations as Model Monitor's constraint_violations.json."""
    return {
        "violations": [
            {"feature_name": v.feature, "constraint_check_type": v.kind, "description": v.description}
            for v in violations
        ]
    }

"""The bundle's pickle-free GAM format: a fitted pygam LinearGAM as JSON plus arrays.

`<name>.json` holds the term layout (kind, margins with feature index, n_splines,
spline_order, basis, dtype, edge knots, lambdas, penalties, constraints, and each
term's coefficient slice), the fitted distribution scale, the scalar statistics
and, if given, the feature names. `<name>.npz` holds the coefficients and the
array statistics (covariance, standard errors, edof per coefficient, p-values).
Loading uses only `json` and `np.load(allow_pickle=False)` and rebuilds the
LinearGAM from pygam's own term classes, so `predict`, `prediction_intervals`
and `partial_dependence` give the same numbers as before saving, and no code
from the files is ever executed.
"""

from __future__ import annotations

import json
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pygam import LinearGAM
from pygam.terms import SplineTerm, TensorTerm, TermList

from dragon.errors import BundleError

FORMAT = "dragon-gam"
FORMAT_VERSION = 1
ARRAY_STATISTICS = ("cov", "se", "edof_per_coef", "p_values")
SCALAR_STATISTICS = (
    "n_samples",
    "m_features",
    "edof",
    "scale",
    "AIC",
    "AICc",
    "GCV",
    "UBRE",
    "loglikelihood",
    "deviance",
)
MARGIN_FIELDS = ("n_splines", "spline_order", "basis", "dtype", "lam", "penalties", "constraints")


def save_gam(
    gam: LinearGAM, directory: Path, name: str, *, feature_names: Sequence[str] | None = None
) -> list[Path]:
    """Write `<name>.json` and `<name>.npz` for a fitted LinearGAM into `directory` (created)."""
    if not getattr(gam, "_is_fitted", False):
        raise BundleError(f"GAM '{name}' is not fitted; fit it before writing it to a bundle")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stats = gam.statistics_
    layout = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_names": list(feature_names) if feature_names is not None else None,
        "terms": [_term_layout(gam, i) for i in range(len(gam.terms))],
        "scale": float(gam.distribution.scale),
        "statistics": {key: _plain(stats[key]) for key in SCALAR_STATISTICS},
        "pseudo_r2": {key: float(value) for key, value in stats["pseudo_r2"].items()},
    }
    json_path = directory / f"{name}.json"
    npz_path = directory / f"{name}.npz"
    json_path.write_text(json.dumps(layout, indent=1))
    arrays = {key: np.asarray(stats[key], dtype=np.float64) for key in ARRAY_STATISTICS}
    np.savez(npz_path, coef=np.asarray(gam.coef_, dtype=np.float64), **arrays)
    return [json_path, npz_path]


def load_gam(directory: Path, name: str) -> LinearGAM:
    """Rebuild the fitted LinearGAM `name` from `directory` without refitting; BundleError if malformed."""
    json_path = Path(directory) / f"{name}.json"
    npz_path = Path(directory) / f"{name}.npz"
    try:
        layout = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("coef", *ARRAY_STATISTICS)}
        return _rebuild(layout, arrays)
    except FileNotFoundError as error:
        raise BundleError(f"{error.filename}: GAM file missing from the bundle; re-export it") from None
    except (OSError, KeyError, TypeError, ValueError, IndexError, zipfile.BadZipFile) as error:
        raise BundleError(
            f"{json_path} / {npz_path.name}: malformed GAM ({type(error).__name__}: {error}); "
            "re-export the bundle"
        ) from None


def _term_layout(gam: LinearGAM, i: int) -> dict[str, Any]:
    term = gam.terms[i]
    indices = gam.terms.get_coef_indices(i)
    coef = [indices[0], indices[-1] + 1]
    if term.isintercept:
        return {"kind": "intercept", "coef": coef}
    margins = list(term) if term.istensor else [term]
    return {
        "kind": "tensor" if term.istensor else "spline",
        "features": [int(m.feature) for m in margins],
        "margins": [_margin_layout(m) for m in margins],
        "coef": coef,
    }


def _margin_layout(term: SplineTerm) -> dict[str, Any]:
    layout = {"feature": int(term.feature), "edge_knots": [float(k) for k in term.edge_knots_]}
    layout.update({key: _plain(getattr(term, key)) for key in MARGIN_FIELDS})
    return layout


def _plain(value: Any) -> Any:
    """numpy scalars and sequences to JSON-able Python values."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _rebuild(layout: dict[str, Any], arrays: dict[str, np.ndarray]) -> LinearGAM:
    if layout.get("format") != FORMAT or layout.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"format {layout.get('format')!r} version {layout.get('format_version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    term_layouts = layout["terms"]
    kinds = [t["kind"] for t in term_layouts]
    if "intercept" in kinds[:-1] or any(k not in ("spline", "tensor", "intercept") for k in kinds):
        raise ValueError(f"term kinds {kinds}: expected spline/tensor terms and at most a final intercept")
    terms = [_build_term(t) for t in term_layouts if t["kind"] != "intercept"]
    stats = layout["statistics"]
    m_features = int(stats["m_features"])
    gam = LinearGAM(TermList(*terms), fit_intercept=kinds[-1] == "intercept")
    gam._validate_params()
    gam._validate_data_dep_params(np.zeros((1, m_features)))  # edge knots are set: nothing is learnt here

    n_coefs = gam.terms.n_coefs
    for i, term_layout in enumerate(term_layouts):
        indices = gam.terms.get_coef_indices(i)
        if term_layout["coef"] != [indices[0], indices[-1] + 1]:
            raise ValueError(f"term {i}: coefficient slice {term_layout['coef']} does not match its layout")
    coef = arrays["coef"]
    if coef.shape != (n_coefs,) or arrays["cov"].shape != (n_coefs, n_coefs):
        raise ValueError(f"coef {coef.shape} / cov {arrays['cov'].shape} do not fit {n_coefs} coefficients")
    names = layout.get("feature_names")
    if names is not None and len(names) != m_features:
        raise ValueError(f"{len(names)} feature names for {m_features} features")

    gam.coef_ = coef
    gam.distribution.scale = float(layout["scale"])
    gam.statistics_ = {key: stats[key] for key in SCALAR_STATISTICS}
    gam.statistics_["pseudo_r2"] = OrderedDict(layout["pseudo_r2"])
    gam.statistics_.update({key: arrays[key] for key in ("cov", "se", "edof_per_coef")})
    gam.statistics_["p_values"] = [float(p) for p in arrays["p_values"]]
    return gam


def _build_term(layout: dict[str, Any]) -> SplineTerm:
    margins = [
        SplineTerm(
            int(m["feature"]),
            edge_knots=np.asarray(m["edge_knots"], dtype=np.float64),
            **{key: m[key] for key in MARGIN_FIELDS},
        )
        for m in layout["margins"]
    ]
    if layout["kind"] == "spline":
        if len(margins) != 1:
            raise ValueError(f"a spline term has one margin, found {len(margins)}")
        return margins[0]
    return TensorTerm(*margins)

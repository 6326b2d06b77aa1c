"""A fitted pygam LinearGAM compiled to numpy: prediction, input gradient, standard error, bounds.

pygam's `predict` rebuilds a sparse model matrix per call (~1.2 ms a row); an optimizer calls
the model hundreds of times per recommendation. This module evaluates the same fitted terms
directly:

* pygam's B-splines live on uniform knots in the rescaled coordinate
  `u = (x - edge_knots[0]) / span` (knot spacing `1 / (n_splines - order)`), so on each knot
  interval the `order + 1` non-zero basis functions are fixed polynomials of the local
  coordinate: one small matrix product gives values and derivatives for many rows at once.
* Outside [0, 1] pygam extrapolates every basis function linearly from its value and slope at
  the nearest end: `B(u) = B(u_c) + B'(u_c) (u - u_c)`, `u_c = clip(u, 0, 1)`.
* A tensor term's columns are the row-wise Kronecker product of its margins, first margin major.

From the model-matrix row `m(x)` and its Jacobian `dm/dx`:
mean = m·β, gradient = (dm/dx)ᵀβ, se² = m Σ mᵀ (Σ = statistics_['cov']), and the prediction
variance adds scale² exactly as pygam's `prediction_intervals` does, with quantiles from Student's
t (df = n_samples - edof) when the scale was estimated, from the normal distribution otherwise.

It relies on pygam internals, so `verify` compares it with `gam.predict` when a bundle loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from math import comb, factorial
from typing import Any, Literal

import numpy as np
from numpy.polynomial import polynomial as P
from scipy import stats

from dragon.errors import BundleError

VERIFY_TOLERANCE = 1e-9
EXTRAPOLATION_MARGIN = 0.1
Side = Literal["upper", "lower"]


@cache
def _local_polynomials(order: int) -> np.ndarray:
    """(order+1, order+1) matrix C: on a knot interval with local coordinate t in [0, 1], the
    non-zero uniform B-splines of degree `order` are [1, t, t², ...] @ C (leftmost first).

    Cardinal B-spline on knots 0..order+1: N(x) = 1/order! Σ_j (-1)^j C(order+1, j) (x - j)_+^order;
    basis i of the interval is N at x = order - i + t.
    """
    coefficients = np.zeros((order + 1, order + 1))
    for i in range(order + 1):
        shift = order - i
        piece = np.zeros(1)
        for j in range(shift + 1):  # (x - j)_+ is active for j <= x, i.e. j <= shift on this piece
            term = P.polypow([shift - j, 1.0], order) * ((-1) ** j * comb(order + 1, j))
            piece = P.polyadd(piece, term)
        coefficients[: len(piece), i] = piece / factorial(order)
    return coefficients


@dataclass(frozen=True)
class _SplineBasis:
    """pygam's non-periodic B-spline basis for one (n_splines, spline_order)."""

    n_splines: int
    order: int

    @property
    def n_intervals(self) -> int:
        return self.n_splines - self.order

    def evaluate(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis values and d/du for rescaled inputs `u` (n, G) -> (n, G, n_splines) each."""
        n_int = self.n_intervals
        C, exponents, slope_factors = _local_polynomials(self.order), *_power_tables(self.order)
        clipped = np.clip(u, 0.0, 1.0)
        scaled = clipped * n_int
        first = np.minimum(np.floor(scaled), n_int - 1)  # u = 1 belongs to the last interval
        t = (scaled - first)[..., None]
        local = (t**exponents) @ C
        local_du = ((t ** slope_factors[0]) * slope_factors[1]) @ C * n_int
        local += local_du * (u - clipped)[..., None]  # linear extrapolation outside [0, 1]
        # Scatter the order+1 non-zero functions into the full basis through flat indices.
        cells = u.size
        flat = (np.arange(cells) * self.n_splines + first.ravel().astype(np.intp))[:, None] + exponents
        values = np.zeros(cells * self.n_splines)
        derivatives = np.zeros(cells * self.n_splines)
        values[flat] = local.reshape(cells, -1)
        derivatives[flat] = local_du.reshape(cells, -1)
        shape = (*u.shape, self.n_splines)
        return values.reshape(shape), derivatives.reshape(shape)


@cache
def _power_tables(order: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Exponents 0..order, and (exponent, factor) of each power's derivative (t^p)' = p t^(p-1)."""
    exponents = np.arange(order + 1)
    return exponents, (np.maximum(exponents - 1, 0), exponents.astype(float))


@dataclass(frozen=True)
class _Margin:
    feature: int
    offset: float
    span: float
    basis: _SplineBasis


@dataclass(frozen=True)
class _Term:
    kind: Literal["intercept", "linear", "spline", "tensor"]
    columns: slice
    feature: int = -1  # linear terms
    margins: tuple[int, ...] = ()  # indices into CompiledGAM._margins


@dataclass(frozen=True)
class GamEvaluation:
    """One compiled GAM at n rows: mean, d mean/dx (n, F), standard error of the mean and d se/dx."""

    mean: np.ndarray
    gradient: np.ndarray
    se: np.ndarray
    se_gradient: np.ndarray


class CompiledGAM:
    """A fitted LinearGAM as arrays; `features` names its input columns in order."""

    def __init__(
        self,
        features: Sequence[str],
        terms: list[_Term],
        margins: list[_Margin],
        coef: np.ndarray,
        cov: np.ndarray,
        scale: float,
        t_df: float | None,
    ) -> None:
        self.features = tuple(features)
        self._terms = terms
        self._margins = margins
        self.coef = coef
        self.cov = cov
        self.scale = scale
        self.t_df = t_df  # None: known scale, normal quantiles
        groups: dict[_SplineBasis, list[int]] = {}
        for index, margin in enumerate(margins):
            groups.setdefault(margin.basis, []).append(index)
        # Margins sharing a basis are evaluated in one vectorised call.
        self._groups = [
            (
                basis,
                np.array(idx),
                np.array([margins[i].feature for i in idx]),
                np.array([margins[i].offset for i in idx]),
                np.array([margins[i].span for i in idx]),
            )
            for basis, idx in groups.items()
        ]

    @classmethod
    def from_pygam(cls, gam: Any, feature_names: Sequence[str]) -> CompiledGAM:
        """Compile a fitted LinearGAM whose column i is `feature_names[i]`; BundleError if unsupported."""
        if not getattr(gam, "_is_fitted", False):
            raise BundleError("cannot compile an unfitted GAM")
        if getattr(gam.link, "__class__", type(None)).__name__ != "IdentityLink":
            raise BundleError(f"only identity-link GAMs compile, found {type(gam.link).__name__}")
        n_features = len(feature_names)
        terms: list[_Term] = []
        margins: list[_Margin] = []

        def margin_of(term: Any) -> int:
            if term.basis != "ps" or getattr(term, "by", None) is not None:
                raise BundleError(
                    f"spline basis '{term.basis}' (by={term.by}) is not supported; use s()/te()"
                )
            if int(term.feature) >= n_features:
                raise BundleError(
                    f"a GAM term reads feature {term.feature}, but only {n_features} names given"
                )
            low, high = np.sort(np.asarray(term.edge_knots_, dtype=float))[[0, -1]]
            span = high - low if high != low else 1.0
            margins.append(
                _Margin(
                    int(term.feature),
                    float(low),
                    float(span),
                    _SplineBasis(int(term.n_splines), int(term.spline_order)),
                )
            )
            return len(margins) - 1

        for i, term in enumerate(gam.terms):
            indices = gam.terms.get_coef_indices(i)
            columns = slice(int(indices[0]), int(indices[-1]) + 1)
            name = type(term).__name__
            if term.isintercept:
                terms.append(_Term("intercept", columns))
            elif name == "LinearTerm":
                terms.append(_Term("linear", columns, feature=int(term.feature)))
            elif name == "SplineTerm":
                if int(term.spline_order) < 1:
                    raise BundleError("spline_order 0 terms are not supported")
                terms.append(_Term("spline", columns, margins=(margin_of(term),)))
            elif name == "TensorTerm":
                if getattr(term, "by", None) is not None:
                    raise BundleError("tensor terms with `by` are not supported")
                terms.append(_Term("tensor", columns, margins=tuple(margin_of(m) for m in term)))
            else:
                raise BundleError(f"GAM term type {name} is not supported (intercept, l, s, te are)")
        coef = np.asarray(gam.coef_, dtype=float)
        cov = np.asarray(gam.statistics_["cov"], dtype=float)
        if cov.shape != (len(coef), len(coef)):
            raise BundleError(f"covariance {cov.shape} does not fit {len(coef)} coefficients")
        distribution = gam.distribution
        t_df = (
            None
            if distribution._known_scale
            else float(gam.statistics_["n_samples"] - gam.statistics_["edof"])
        )
        return cls(feature_names, terms, margins, coef, cov, float(distribution.scale), t_df)

    @property
    def n_features(self) -> int:
        return len(self.features)

    def design(self, X: np.ndarray, jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Model matrix rows (n, p) and, if asked, their derivatives wrt the inputs (n, p, F)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        n = len(X)
        p = len(self.coef)
        M = np.zeros((n, p))
        dM = np.zeros((n, p, self.n_features)) if jacobian else None
        values: list[np.ndarray] = [None] * len(self._margins)  # type: ignore[list-item]
        slopes: list[np.ndarray] = [None] * len(self._margins)  # type: ignore[list-item]
        for basis, idx, features, offsets, spans in self._groups:
            B, dB = basis.evaluate((X[:, features] - offsets) / spans)
            dB = dB / spans[:, None]  # d/du -> d/dx
            for position, margin in enumerate(idx):
                values[margin], slopes[margin] = B[:, position], dB[:, position]
        for term in self._terms:
            cols = term.columns
            if term.kind == "intercept":
                M[:, cols] = 1.0
            elif term.kind == "linear":
                M[:, cols] = X[:, term.feature : term.feature + 1]
                if dM is not None:
                    dM[:, cols, term.feature] = 1.0
            elif term.kind == "spline":
                (margin,) = term.margins
                M[:, cols] = values[margin]
                if dM is not None:
                    dM[:, cols, self._margins[margin].feature] += slopes[margin]
            else:
                M[:, cols] = _row_kron([values[m] for m in term.margins])
                if dM is not None:
                    for position, margin in enumerate(term.margins):
                        factors = [values[m] for m in term.margins]
                        factors[position] = slopes[margin]
                        dM[:, cols, self._margins[margin].feature] += _row_kron(factors)
        return M, dM

    def predict(self, X: np.ndarray) -> np.ndarray:
        M, _ = self.design(X, jacobian=False)
        return M @ self.coef

    def evaluate(self, X: np.ndarray) -> GamEvaluation:
        """Mean, gradient, standard error of the mean and its gradient at every row of X."""
        M, dM = self.design(X)
        MS = M @ self.cov
        se = np.sqrt(np.maximum((MS * M).sum(axis=1), 0.0))
        d_variance = 2.0 * (MS[:, None, :] @ dM)[:, 0, :]
        safe = np.where(se > 0, se, 1.0)[:, None]
        se_gradient = np.where(se[:, None] > 0, d_variance / (2.0 * safe), 0.0)
        return GamEvaluation(M @ self.coef, self.coef @ dM, se, se_gradient)

    def standard_error(self, X: np.ndarray) -> np.ndarray:
        M, _ = self.design(X, jacobian=False)
        return np.sqrt(np.maximum(np.einsum("np,np->n", M @ self.cov, M), 0.0))

    def quantile(self, probability: float) -> float:
        """The standardised quantile pygam uses for its intervals (t or normal)."""
        if self.t_df is None:
            return float(stats.norm.ppf(probability))
        return float(stats.t.ppf(probability, df=self.t_df))

    def prediction_sd(self, se: np.ndarray) -> np.ndarray:
        """Standard deviation of a new observation given the standard error of the mean."""
        return np.sqrt(se**2 + self.scale**2)

    def interval_half_width(self, X: np.ndarray, width: float = 0.95) -> np.ndarray:
        """Half-width of pygam's two-sided `prediction_intervals(X, width)`."""
        return self.quantile(0.5 + width / 2.0) * self.prediction_sd(self.standard_error(X))

    def prediction_bound(self, X: np.ndarray, confidence: float, side: Side) -> np.ndarray:
        """One-sided bound: a new observation stays below (upper) / above (lower) it with `confidence`."""
        M, _ = self.design(X, jacobian=False)
        se = np.sqrt(np.maximum(np.einsum("np,np->n", M @ self.cov, M), 0.0))
        margin = self.quantile(confidence) * self.prediction_sd(se)
        mean = M @ self.coef
        return mean + margin if side == "upper" else mean - margin

    def verification_rows(self, rows: int, seed: int = 0) -> np.ndarray:
        """Random rows over each feature's knot range and 10 % beyond it (pygam's extrapolation)."""
        low = np.full(self.n_features, -1.0)
        high = np.full(self.n_features, 1.0)
        for margin in self._margins:
            low[margin.feature] = margin.offset - EXTRAPOLATION_MARGIN * margin.span
            high[margin.feature] = margin.offset + (1 + EXTRAPOLATION_MARGIN) * margin.span
        return np.random.default_rng(seed).uniform(low, high, size=(rows, self.n_features))

    def verify(
        self, sample_X: np.ndarray, gam: Any, *, name: str = "GAM", tolerance: float = VERIFY_TOLERANCE
    ) -> float:
        """Compare with `gam.predict` on sample_X; BundleError beyond `tolerance`; returns the max error."""
        sample_X = np.atleast_2d(np.asarray(sample_X, dtype=float))
        error = float(np.max(np.abs(self.predict(sample_X) - gam.predict(sample_X))))
        if not error <= tolerance:
            raise BundleError(
                f"compiled model '{name}' differs from pygam by {error:.3g} (> {tolerance:g}): "
                "the pygam version or the bundle's term layout is not what this build understands"
            )
        return error


def _row_kron(factors: list[np.ndarray]) -> np.ndarray:
    """Row-wise Kronecker product, first factor major (pygam's tensor column order)."""
    result = factors[0]
    for factor in factors[1:]:
        result = (result[:, :, None] * factor[:, None, :]).reshape(len(result), -1)
    return result

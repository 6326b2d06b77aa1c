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
from functools import cache, cached_property
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

    @cached_property
    def _interval_table(self) -> np.ndarray:
        """(n_intervals, order+1, 2 n_splines): on interval j, [1, t, t², ...] @ table[j] is every basis
        function's value, then its d/dv; one gather and one matrix product evaluate a whole row."""
        C = _local_polynomials(self.order)
        powers = np.arange(1, self.order + 1, dtype=float)[:, None]
        slope = np.zeros_like(C)
        slope[:-1] = powers * C[1:]  # (t^p)' = p t^(p-1), and dt/dv = 1
        table = np.zeros((self.n_intervals, self.order + 1, 2 * self.n_splines))
        for j in range(self.n_intervals):
            table[j, :, j : j + self.order + 1] = C
            table[j, :, self.n_splines + j : self.n_splines + j + self.order + 1] = slope
        return table

    def evaluate(self, v: np.ndarray) -> np.ndarray:
        """Values then d/dv at `v` = u · n_intervals (in knot intervals): (n, G) -> (n, G, 2 n_splines)."""
        n_int = self.n_intervals
        clipped = np.minimum(np.maximum(v, 0.0), float(n_int))
        first = np.floor(clipped)
        np.minimum(first, n_int - 1, out=first)  # v = n_intervals belongs to the last interval
        powers = (clipped - first)[..., None, None] ** _exponents(self.order)
        both = (powers @ self._interval_table.take(first.astype(np.intp), axis=0))[..., 0, :]
        outside = v - clipped
        if outside.any():  # linear extrapolation outside the knots: B(v) = B(v_c) + B'(v_c) (v - v_c)
            both[..., : self.n_splines] += both[..., self.n_splines :] * outside[..., None]
        return both


@cache
def _exponents(order: int) -> np.ndarray:
    return np.arange(order + 1.0)


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
class _BasisGroup:
    """Margins sharing one basis, evaluated in one vectorised call (flat output per row: each margin's
    n_splines values, then its n_splines d/dv, v in knot intervals). Its s() terms' model-matrix
    columns `spline_columns` take the flat output at `spline_values`; their slopes (at
    `spline_values + n_splines`) fill the slope-row slice `slope_slice`."""

    basis: _SplineBasis
    features: np.ndarray
    offsets: np.ndarray
    steps: np.ndarray  # knot spacing span / n_intervals of each margin
    spline_columns: np.ndarray
    spline_values: np.ndarray
    spline_slopes: np.ndarray
    slope_slice: slice


@dataclass(frozen=True)
class _TensorPlan:
    """A te() term of d margins. Its columns and their d/dv per margin are d+1 row-wise Kronecker
    products (first margin major): factor r of margin m is m's values, except its slopes when r = m+1.
    `factors` gathers all d+1 factors of a margin from its group's flat output (n, d+1, n_splines)."""

    columns: slice
    factors: tuple[tuple[int, np.ndarray], ...]  # per margin: (group, flat indices (d+1, n_splines))
    slopes: slice  # slope-row slice: d(columns)/d(u) of margin 0, then margin 1, ...


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
        self._margins = margins
        self.coef = coef
        self.cov = cov
        self.scale = scale
        self.t_df = t_df  # None: known scale, normal quantiles
        self._plan(terms, margins)

    def _plan(self, terms: list[_Term], margins: list[_Margin]) -> None:
        """Index plans that build a model-matrix row m(x) in a few numpy calls, whatever the term count,
        and its "slope row": every non-zero ∂m_c/∂v of a spline or tensor margin (or ∂m_c/∂x of a linear
        term), each tied to its column c (`_slope_columns`) and converted to d/dx of its input feature
        by `_slope_features` (p_slopes, F) = dv/dx = n_intervals/span at that feature. A model's
        gradient wrt its inputs w·dm/dx, for any weights w (the coefficients, or m Σ for the
        variance), is then (w[_slope_columns] * slope_row) @ _slope_features."""
        members: dict[_SplineBasis, list[int]] = {}
        for index, margin in enumerate(margins):
            members.setdefault(margin.basis, []).append(index)
        where = {m: (g, pos) for g, idx in enumerate(members.values()) for pos, m in enumerate(idx)}
        slope_columns: list[int] = []
        slope_margins: list[int] = []  # margin index, or -1 - feature for a linear term

        def claim(columns: list[int], margin: int) -> slice:
            start = len(slope_columns)
            slope_columns.extend(columns)
            slope_margins.extend([margin] * len(columns))
            return slice(start, len(slope_columns))

        for t in terms:
            if t.kind == "linear":
                claim([t.columns.start], -1 - t.feature)
        linear_slopes = len(slope_columns)
        groups = []
        for g, (basis, idx) in enumerate(members.items()):
            ns = basis.n_splines
            columns: list[int] = []
            values: list[int] = []
            start = len(slope_columns)
            for t in terms:
                if t.kind == "spline" and where[t.margins[0]][0] == g:
                    columns.extend(range(t.columns.start, t.columns.stop))
                    values.extend(where[t.margins[0]][1] * 2 * ns + np.arange(ns))
                    claim(list(range(t.columns.start, t.columns.stop)), t.margins[0])
            groups.append(
                _BasisGroup(
                    basis,
                    np.array([margins[i].feature for i in idx], dtype=np.intp),
                    np.array([margins[i].offset for i in idx]),
                    np.array([margins[i].span / basis.n_intervals for i in idx]),
                    np.array(columns, dtype=np.intp),
                    np.array(values, dtype=np.intp),
                    np.array(values, dtype=np.intp) + ns,
                    slice(start, len(slope_columns)),
                )
            )
        tensors = []
        for t in terms:
            if t.kind == "tensor":
                columns = list(range(t.columns.start, t.columns.stop))
                start = len(slope_columns)
                for m in t.margins:
                    claim(columns, m)
                factors = []
                for position, m in enumerate(t.margins):
                    g, place = where[m]
                    ns = margins[m].basis.n_splines
                    rows = np.full((len(t.margins) + 1, 1), 2 * ns * place)
                    rows[position + 1] += ns  # the slopes of this margin
                    factors.append((g, rows + np.arange(ns)))
                tensors.append(_TensorPlan(t.columns, tuple(factors), slice(start, len(slope_columns))))
        to_features = np.zeros((len(slope_columns), len(self.features)))
        for row, margin in enumerate(slope_margins):
            if margin < 0:
                to_features[row, -1 - margin] = 1.0
            else:
                m = margins[margin]
                to_features[row, m.feature] = m.basis.n_intervals / m.span
        self._groups = groups
        self._tensors = tensors
        self._slope_columns = np.array(slope_columns, dtype=np.intp)
        self._slope_features = to_features
        self._linear_slopes = linear_slopes
        self._intercept_columns = np.array(
            [c for t in terms if t.kind == "intercept" for c in range(t.columns.start, t.columns.stop)],
            dtype=np.intp,
        )
        linear = [(t.columns.start, t.feature) for t in terms if t.kind == "linear"]
        self._linear_columns = np.array([c for c, _ in linear], dtype=np.intp)
        self._linear_features = np.array([f for _, f in linear], dtype=np.intp)

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

    def design(self, X: np.ndarray) -> np.ndarray:
        """Model matrix rows (n, p) in pygam's column order."""
        return self._rows(X, slopes=False)[0]

    def _rows(self, X: np.ndarray, *, slopes: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Model matrix rows (n, p) and, if asked, their slope rows (n, p_slopes) (see `_plan`)."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        n = len(X)
        M = np.empty((n, len(self.coef)))  # every column belongs to exactly one term
        S = np.empty((n, len(self._slope_columns))) if slopes else None
        if len(self._intercept_columns):
            M[:, self._intercept_columns] = 1.0
        if len(self._linear_columns):
            M[:, self._linear_columns] = X.take(self._linear_features, axis=1)
            if S is not None:
                S[:, : self._linear_slopes] = 1.0
        outputs = []
        for group in self._groups:
            flat = group.basis.evaluate((X.take(group.features, axis=1) - group.offsets) / group.steps)
            flat = flat.reshape(n, -1)
            M[:, group.spline_columns] = flat.take(group.spline_values, axis=1)
            if S is not None:
                S[:, group.slope_slice] = flat.take(group.spline_slopes, axis=1)
            outputs.append(flat)
        for tensor in self._tensors:
            (g, index), *rest = tensor.factors
            product = outputs[g].take(index, axis=1)  # (n, d+1, ...)
            for g, index in rest:
                factor = outputs[g].take(index, axis=1)
                product = (product[..., :, None] * factor[..., None, :]).reshape(n, len(factor[0]), -1)
            M[:, tensor.columns] = product[:, 0]
            if S is not None:
                S[:, tensor.slopes] = product[:, 1:].reshape(n, -1)
        return M, S

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.design(X) @ self.coef

    def rows_with_slopes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-matrix rows m(x) (n, p) and their slope rows (n, p_slopes) (see `_plan`)."""
        return self._rows(X, slopes=True)

    def input_gradient(self, weights: np.ndarray, slopes: np.ndarray) -> np.ndarray:
        """w · dm/dx for weight vectors w (..., p) at the rows whose slope rows are `slopes` (broadcast
        against w's leading axes): (..., F). With w = coef it is the model's gradient wrt its inputs;
        with w = 2 m Σ the gradient of the variance m Σ mᵀ."""
        return (weights[..., self._slope_columns] * slopes) @ self._slope_features

    def standard_error(self, X: np.ndarray) -> np.ndarray:
        M = self.design(X)
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
        M = self.design(X)
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

"""Fit one plant GAM (a `[models.*]` table) with per-term smoothing selection.

pygam's `gridsearch` refits the whole model on every row for every candidate
lambda. For a Gaussian GAM the fit needs only the sufficient statistics X'X, X'y
and y'y (accumulated over row chunks, so memory stays flat) plus the penalty
matrices: each candidate then costs one p-by-p Cholesky solve, and GCV needs only
p-by-p algebra too (the idea of mgcv's `bam`). The model matrix and the penalties
come from pygam's own term machinery, so the result is an ordinary fitted
`LinearGAM`: `predict`, `prediction_intervals`, `partial_dependence` and
`summary` work on it, and pygam's `fit` is never called.

Equivalence with pygam (checked in tests/training/test_gam_fit.py): pygam's PIRLS
for a Gaussian GAM solves `(X'X + P(lam) + sqrt(eps) I) b = X'y` (plus the
coefficient-dependent constraint penalty C(b), iterated, for shape constraints),
with `edof = trace(H^-1 X'X)`, `GCV = n RSS / (n - 1.4 edof)^2` and
`cov = scale^2 H^-1 X'X H^-1`; we evaluate exactly these from the statistics.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
from pygam import LinearGAM, s, te
from pygam.terms import TermList
from pygam.utils import flatten
from threadpoolctl import threadpool_limits

from dragon.errors import DataError
from dragon.spec import GamModel

GCV_GAMMA = 1.4  # pygam's default inflation of the edof in GCV (Wood 2006, p. 177)
RIDGE = float(np.sqrt(np.finfo(np.float64).eps))  # pygam's diagonal loading of the penalty
# Basis size follows the data (as mgcv's k is an upper limit that penalties work under): the spec's
# n_splines is the largest basis; with fewer than ROWS_PER_COEF training rows per coefficient the
# model's n_splines is lowered (down to MIN_SPLINES) and the smoothing penalties carry the rest. Below
# MIN_ROWS_PER_COEF rows per coefficient of the smallest basis nothing can be learnt: refused.
ROWS_PER_COEF = 3.0
MIN_ROWS_PER_COEF = 1.5
MIN_SPLINES = 5  # a cubic B-spline basis of 5 has two interior knots: still a curve, not a polynomial
MAX_SWEEPS = 4  # coordinate-descent sweeps over the smoothing parameters
SEARCH_CONSTRAINT_STEPS = 2  # shape-constraint steps per solve while searching (see fit_gam)
MIN_SCORE_GAIN = 1e-9  # relative criterion improvement that counts as a better candidate


@dataclass(frozen=True)
class GamFit:
    """A fitted plant GAM and how its smoothing was chosen."""

    gam: LinearGAM
    n_splines: int  # the basis size used (the spec's, or fewer on a short history: basis_size)
    lam: list[list[float]]  # per term (in `terms` order): one lambda per penalty (te() has one per margin)
    terms: list[str]  # term labels, e.g. `s(feed_rate)`, `te(ox1_temperature,ox1_offgas_o2)`
    gcv: float
    edof: float
    fit_seconds: float
    n_rows: int


@dataclass(frozen=True)
class SufficientStats:
    """Everything a Gaussian GAM fit needs from the rows: X'X, X'y, y'y, sum y, n."""

    gram: np.ndarray
    cross: np.ndarray
    yy: float
    y_sum: float
    n_rows: int

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(
            self.gram + other.gram,
            self.cross + other.cross,
            self.yy + other.yy,
            self.y_sum + other.y_sum,
            self.n_rows + other.n_rows,
        )

    def __sub__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(
            self.gram - other.gram,
            self.cross - other.cross,
            self.yy - other.yy,
            self.y_sum - other.y_sum,
            self.n_rows - other.n_rows,
        )

    def squared_error(self, coef: np.ndarray) -> float:
        """Sum of squared errors of `coef` on these rows: y'y - 2 b'X'y + b'X'X b."""
        return max(self.yy - coef @ (2.0 * self.cross - self.gram @ coef), 0.0)


@dataclass(frozen=True)
class _Candidate:
    lams: tuple[float, ...]
    coef: np.ndarray
    factor: tuple[np.ndarray, bool]  # Cholesky factor of H = X'X + P(lam) + C(coef) + ridge I
    influence: np.ndarray | None  # H^-1 X'X: its trace is the edof (None: not computed, see evaluate)
    rss: float
    edof: float
    gcv: float
    cv: float | None  # blocked cross-validation mean squared error (None under GCV selection)

    @property
    def score(self) -> float:
        """What the smoothing search minimises."""
        return self.gcv if self.cv is None else self.cv


def n_coefficients(model: GamModel, n_splines: int) -> int:
    """Coefficients of `model`'s GAM, `n_splines` per spline and per tensor margin (with the intercept)."""
    return len(model.features) * n_splines + len(model.interactions) * n_splines**2 + 1


def basis_size(model: GamModel, n_rows: int) -> int:
    """The n_splines to fit `model` on `n_rows`: the spec's, lowered until the rows give ROWS_PER_COEF per
    coefficient, never below MIN_SPLINES (or the spec's own, if smaller). DataError when even that basis has
    fewer than MIN_ROWS_PER_COEF rows per coefficient, naming what to change."""
    smallest = min(MIN_SPLINES, model.n_splines)
    n_splines = model.n_splines
    while n_splines > smallest and n_rows < ROWS_PER_COEF * n_coefficients(model, n_splines):
        n_splines -= 1
    needed = int(np.ceil(MIN_ROWS_PER_COEF * n_coefficients(model, smallest)))
    if n_rows < needed:
        coefficients = n_coefficients(model, smallest)
        raise DataError(
            f"model '{model.name}': {n_rows} training rows for {coefficients} coefficients "
            f"even at n_splines = {smallest}; need at least {needed}. Give a longer history, a shorter "
            "[training] resample_minutes, or fewer features / interactions for this model"
        )
    return n_splines


def build_gam(model: GamModel, n_splines: int | None = None) -> LinearGAM:
    """An unfitted LinearGAM for `model`: feature i of `model.features` is column i of X.

    One spline term per feature, one tensor term per interaction, shape constraints on
    the spline of the constrained feature and on that feature's margin of any tensor
    term (so the whole function keeps the shape), `n_splines` (default: the spec's) per
    spline and per tensor margin.
    """
    n_splines = n_splines or model.n_splines
    column = {feature: i for i, feature in enumerate(model.features)}
    terms = [s(column[f], n_splines=n_splines, constraints=model.shape.get(f)) for f in model.features]
    for a, b in model.interactions:
        terms.append(
            te(
                column[a],
                column[b],
                n_splines=n_splines,
                constraints=[model.shape.get(a), model.shape.get(b)],
            )
        )
    return LinearGAM(TermList(*terms))


def term_labels(gam: LinearGAM, features: list[str]) -> list[str]:
    """Readable labels of the non-intercept terms, e.g. `s(feed)` and `te(t1,o2)`."""
    labels = []
    for term in gam.terms:
        if term.isintercept:
            continue
        names = [features[int(i)] for i in np.atleast_1d(term.feature)]
        labels.append(f"{'te' if term.istensor else 's'}({','.join(names)})")
    return labels


def fit_gam(model: GamModel, X: np.ndarray, y: np.ndarray, *, chunk_rows: int = 50_000) -> GamFit:
    """Fit `model` with BLAS on one thread (see _fit_gam)."""
    # The search solves hundreds of p-by-p systems, p ~ 100-300: threads gain nothing on matrices this
    # small and, on a machine whose cores are busy, cost everything (oxidation_1 on 21 days: 73 s wall
    # with the default thread pool under load, 1 s on one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_gam(model, X, y, chunk_rows=chunk_rows)


def _fit_gam(model: GamModel, X: np.ndarray, y: np.ndarray, *, chunk_rows: int) -> GamFit:
    """Fit `model` on X (columns = `model.features`) and y (= `model.target`).

    Smoothing is selected per penalty by minimising the model's criterion
    (`model.selection`): blocked cross-validation over `model.cv_blocks` contiguous
    time blocks (rows must be in time order), or pygam's GCV. First the best lambda
    shared by all terms on `model.lam_grid` (what pygam's gridsearch does), then
    coordinate descent per penalty on that grid refined by its geometric midpoints.
    Both criteria need only per-block X'X, X'y, y'y. The basis is the spec's, smaller
    on few rows (basis_size). Raises DataError for NaN/inf, a constant feature or too
    few rows.
    """
    started = time.perf_counter()
    X, y = _checked(model, X, y)
    n_splines = basis_size(model, len(y))
    gam = build_gam(model, n_splines)
    gam._validate_params()
    # Edge knots from the global range of every column, whatever the chunking.
    gam._validate_data_dep_params(np.vstack([X.min(axis=0), X.max(axis=0)]))
    gam.statistics_ = {"n_samples": len(y), "m_features": X.shape[1]}
    n_blocks = model.cv_blocks if model.selection == "blocked_cv" else 1
    blocks = [  # contiguous views: no copy of the rows
        accumulate(gam, X_block, y_block, chunk_rows=chunk_rows)
        for X_block, y_block in zip(np.array_split(X, n_blocks), np.array_split(y, n_blocks), strict=True)
    ]
    problem = PenalisedProblem(
        stats=sum(blocks[1:], blocks[0]),
        blocks=blocks if model.selection == "blocked_cv" else [],
        components=penalty_components(gam),
        shape=ShapePenalty.of(gam) if gam.terms.hasconstraint else None,
        max_iter=gam.max_iter,
        tol=gam.tol,
    )
    try:
        # The search only ranks candidates: with shape constraints each warm-started solve stops after
        # SEARCH_CONSTRAINT_STEPS constraint steps (the violated set near the boundary keeps flickering,
        # about 5 steps per solve to pygam's tol); the winner is then redone to convergence below.
        best = _select(
            replace(problem, max_iter=min(problem.max_iter, SEARCH_CONSTRAINT_STEPS)), model.lam_grid
        )
        if problem.shape is not None or problem.blocks:
            # Redo the winner with its full statistics (the CV search skips them) and, with shape
            # constraints, from pygam's own start (the search warm-starts the constraint iteration)
            # so that the result is the one pygam's fit gives with these lambdas. The folds are not
            # solved again: the winner's CV score is not needed any more.
            best = evaluate(replace(problem, blocks=[]), best.lams)
    except np.linalg.LinAlgError:
        raise DataError(
            f"model '{model.name}': the penalised least-squares system is numerically singular for "
            f"these training rows (features {model.features}); check for features with almost no variation"
        ) from None
    _install(gam, problem.stats, best)
    return GamFit(
        gam=gam,
        n_splines=n_splines,
        lam=[[float(v) for v in np.atleast_1d(flatten(lams))] for lams in gam.lam],
        terms=term_labels(gam, model.features),
        gcv=best.gcv,
        edof=best.edof,
        fit_seconds=time.perf_counter() - started,
        n_rows=len(y),
    )


def accumulate(gam: LinearGAM, X: np.ndarray, y: np.ndarray, *, chunk_rows: int) -> SufficientStats:
    """X'X, X'y, y'y over row chunks of pygam's own model matrix (memory ~ chunk_rows x p)."""
    p = gam.terms.n_coefs
    gram = np.zeros((p, p))
    cross = np.zeros(p)
    for start in range(0, len(y), chunk_rows):
        basis = gam._modelmat(X[start : start + chunk_rows]).toarray()
        target = y[start : start + chunk_rows]
        gram += basis.T @ basis
        cross += basis.T @ target
    return SufficientStats(gram, cross, float(y @ y), float(y.sum()), len(y))


def penalty_components(gam: LinearGAM) -> list[np.ndarray]:
    """One p-by-p penalty matrix per smoothing parameter, each at lambda = 1.

    pygam's penalty is linear in the lambdas, so P(lam) = sum_k lam_k P_k.
    """
    saved = flatten(gam.lam)
    components = []
    for k in range(len(saved)):
        gam.terms.lam = [1.0 if j == k else 0.0 for j in range(len(saved))]
        components.append(gam.terms.build_penalties().toarray())
    gam.terms.lam = saved
    return components


@dataclass(frozen=True)
class ShapePenalty:
    """pygam's shape-constraint penalty C(b) as dense p-by-p algebra.

    pygam builds, per constrained spline (or tensor margin, slice by slice), the
    difference operator D of order 1 (monotonic) or 2 (convex/concave), penalises
    the violated differences with 1e9 * D' diag(violated) D and adds a diagonal
    loading to every slice with a violation. pygam does that with Python loops over
    sparse matrices (~10 ms per call for a tensor term); here all slices are rows
    of one matrix, checked equal to `gam.terms.build_constraints` in the tests.
    """

    differences: np.ndarray  # (rows, p): one row per difference of one constrained slice
    increasing: np.ndarray  # (rows,) True: violated when the difference < 0, else when > 0
    slice_of_row: np.ndarray  # (rows,) index into `slices`
    slices: list[np.ndarray]  # coefficient indices of each constrained slice
    strength: float
    loading: float

    @classmethod
    def of(cls, gam: LinearGAM) -> ShapePenalty:
        p = gam.terms.n_coefs
        rows, increasing, slice_of_row, slices = [], [], [], []
        for i, term in enumerate(gam.terms):
            if term.isintercept or not term.hasconstraint:
                continue
            offset = gam.terms.get_coef_indices(i)[0]
            margins = list(term) if term.istensor else [term]
            for m, margin in enumerate(margins):
                local = term._iterate_marginal_coef_slices(m) if term.istensor else [np.arange(term.n_coefs)]
                for constraint in margin.constraints:
                    if constraint is None:
                        continue
                    order = 1 if constraint.startswith("monotonic") else 2
                    operator = np.diff(np.eye(margin.n_coefs), n=order, axis=0)
                    for index in local:
                        block = np.zeros((len(operator), p))
                        block[:, offset + np.asarray(index)] = operator
                        rows.append(block)
                        increasing += [constraint in ("monotonic_inc", "convex")] * len(operator)
                        slice_of_row += [len(slices)] * len(operator)
                        slices.append(offset + np.asarray(index))
        return cls(
            np.vstack(rows),
            np.asarray(increasing),
            np.asarray(slice_of_row),
            slices,
            float(gam._constraint_lam),
            float(gam._constraint_l2),
        )

    def violated(self, coef: np.ndarray) -> np.ndarray:
        """(rows,) True where `coef` violates that difference's constraint: what C(coef) penalises."""
        differences = self.differences @ coef
        return np.where(self.increasing, differences < 0, differences > 0)

    def matrix(self, violated: np.ndarray) -> np.ndarray:
        """C for the violated differences (`violated(coef)`)."""
        active = self.differences[violated]
        penalty = self.strength * (active.T @ active)
        for violated_slice in np.unique(self.slice_of_row[violated]):
            index = self.slices[violated_slice]
            penalty[index, index] += self.loading
        return penalty


@dataclass(frozen=True)
class PenalisedProblem:
    """Everything a candidate lambda needs: no row of data is touched again."""

    stats: SufficientStats
    blocks: list[SufficientStats]  # contiguous time blocks for cross-validation (empty: GCV)
    components: list[np.ndarray]
    shape: ShapePenalty | None
    max_iter: int
    tol: float


def evaluate(
    problem: PenalisedProblem,
    lams: tuple[float, ...],
    start: np.ndarray | None = None,
    *,
    statistics: bool = True,
) -> _Candidate:
    """Solve the penalised least squares for `lams` and score it by GCV (and blocked CV).

    `start` warm-starts the shape-constraint iteration (unused without constraints).
    `statistics=False` skips the influence matrix, edof and GCV (a p-by-p solve with a
    matrix right-hand side) when only the blocked-CV score is wanted.
    """
    stats = problem.stats
    penalty = sum(lam * P for lam, P in zip(lams, problem.components, strict=True))
    coef, factor = _solve(problem, stats, penalty, start)
    rss = stats.squared_error(coef)
    n = stats.n_rows
    influence, edof, gcv = None, float("nan"), float("nan")
    if statistics:
        influence = sla.cho_solve(factor, stats.gram, check_finite=False)
        edof = float(np.trace(influence))
        gcv = n * rss / (n - GCV_GAMMA * edof) ** 2
    cv = None
    if problem.blocks:
        # Each fold: fit on the other blocks (total minus this block), score on this block.
        errors = []
        for block in problem.blocks:
            fold_coef, _ = _solve(problem, stats - block, penalty, coef)
            errors.append(block.squared_error(fold_coef))
        cv = float(np.sum(errors) / n)
    return _Candidate(tuple(lams), coef, factor, influence, rss, edof, gcv, cv)


def _solve(
    problem: PenalisedProblem, stats: SufficientStats, penalty: np.ndarray, start: np.ndarray | None
) -> tuple[np.ndarray, tuple[np.ndarray, bool]]:
    base = stats.gram + penalty
    base[np.diag_indices_from(base)] += RIDGE
    if problem.shape is not None:
        return _constrained_solve(problem, base, stats.cross, start)
    factor = sla.cho_factor(base, check_finite=False)
    return sla.cho_solve(factor, stats.cross, check_finite=False), factor


def _constrained_solve(
    problem: PenalisedProblem, base: np.ndarray, cross: np.ndarray, start: np.ndarray | None
) -> tuple[np.ndarray, tuple[np.ndarray, bool]]:
    """pygam's shape-constraint iteration, on p-by-p matrices only.

    C(b) depends only on the coefficients, so each PIRLS step of pygam is one solve
    with X'X + P + C(b). Without `start` it starts where pygam starts (all
    coefficients sqrt(eps)); it stops at pygam's tol, or as soon as the new coefficients violate
    the same differences as the old: C, hence the next solve, would be the same (a fixed point,
    where pygam spends one more identical solve to see its step vanish). That halves the
    solves of a warm-started search, where the violated set rarely changes.
    """
    coef = np.full(len(cross), RIDGE) if start is None else start
    violated = problem.shape.violated(coef)
    for _ in range(problem.max_iter):
        factor = sla.cho_factor(base + problem.shape.matrix(violated), check_finite=False)
        new = sla.cho_solve(factor, cross, check_finite=False)
        diff = np.linalg.norm(coef - new) / np.linalg.norm(new)
        coef, previous, violated = new, violated, problem.shape.violated(new)
        if diff < problem.tol or np.array_equal(violated, previous):
            break
    return coef, factor


def _select(problem: PenalisedProblem, lam_grid: list[float]) -> _Candidate:
    n_lams = len(problem.components)
    grid = np.sort(np.asarray(lam_grid, dtype=float))
    statistics = not problem.blocks  # GCV needs them; blocked CV does not
    best = min(
        (evaluate(problem, (lam,) * n_lams, statistics=statistics) for lam in grid), key=lambda c: c.score
    )
    # Per-penalty search on the spec grid plus its geometric midpoints.
    fine = np.sort(np.r_[grid, np.sqrt(grid[:-1] * grid[1:])])
    for _ in range(MAX_SWEEPS):
        improved = False
        for k in range(n_lams):
            for lam in fine:
                if lam == best.lams[k]:
                    continue
                lams = best.lams[:k] + (float(lam),) + best.lams[k + 1 :]
                candidate = evaluate(problem, lams, start=best.coef, statistics=statistics)
                if candidate.score < best.score * (1.0 - MIN_SCORE_GAIN):
                    best, improved = candidate, True
        if not improved:
            break
    return best


def _install(gam: LinearGAM, stats: SufficientStats, best: _Candidate) -> None:
    """Leave `gam` as pygam's own fit with these lambdas would: coef_, statistics_, scale."""
    gam.terms.lam = list(best.lams)
    gam.coef_ = best.coef
    n, edof, rss = stats.n_rows, best.edof, best.rss
    scale = float(np.sqrt(rss / (n - edof)))
    gam.distribution.scale = scale
    # cov = scale^2 H^-1 X'X H^-1 (pygam's B B' scale^2), formed as A A' so that it stays
    # positive semi-definite although X'X is singular (each spline basis contains the constant).
    eigval, eigvec = np.linalg.eigh(stats.gram)
    root = sla.cho_solve(best.factor, eigvec * np.sqrt(np.clip(eigval, 0.0, None)), check_finite=False)
    cov = root @ root.T * scale**2
    loglik = _normal_loglik(rss, n, scale)
    null_rss = stats.yy - stats.y_sum**2 / n
    null_loglik = _normal_loglik(null_rss, n, scale)
    aic = -2.0 * loglik + 2.0 * edof + 2.0  # +2: the scale is estimated
    st = gam.statistics_
    # pygam's edof_per_coef is diag(U1 U1') of its QR/SVD; we use mgcv's diag(H^-1 X'X):
    # a different split over coefficients with the same total edof.
    st["edof_per_coef"] = np.diagonal(best.influence).copy()
    st["edof"] = edof
    st["scale"] = scale
    st["cov"] = cov
    st["se"] = np.sqrt(np.diagonal(cov))
    st["AIC"] = aic
    st["AICc"] = aic + 2.0 * (edof + 1.0) * (edof + 2.0) / (n - edof - 2.0)
    st["pseudo_r2"] = OrderedDict(
        explained_deviance=1.0 - rss / null_rss,
        McFadden=loglik / null_loglik,
        McFadden_adj=1.0 - (loglik - edof) / null_loglik,
    )
    st["GCV"], st["UBRE"] = best.gcv, None
    st["loglikelihood"] = loglik
    st["deviance"] = rss / scale**2  # pygam reports the scaled deviance
    st["p_values"] = gam._estimate_p_values()


def _normal_loglik(rss: float, n: int, scale: float) -> float:
    return -0.5 * n * np.log(2.0 * np.pi * scale**2) - rss / (2.0 * scale**2)


def _checked(model: GamModel, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    where = f"model '{model.name}'"
    try:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: training data is not numeric ({error})") from None
    if X.ndim != 2 or X.shape[1] != len(model.features):
        raise DataError(
            f"{where}: expected {len(model.features)} feature columns {model.features}, got shape {X.shape}"
        )
    if len(y) != len(X):
        raise DataError(f"{where}: {len(X)} feature rows but {len(y)} values of target '{model.target}'")
    for values, tag in [*zip(X.T, model.features, strict=True), (y, model.target)]:
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(
                f"{where}: tag '{tag}' has {int(bad.sum())} NaN/inf value(s) (first at row "
                f"{int(np.argmax(bad))}); drop or fill those rows before training"
            )
    for values, tag in zip(X.T, model.features, strict=True):
        if values.min() == values.max():
            raise DataError(
                f"{where}: feature '{tag}' is constant ({values[0]:g}) in the training rows; "
                "a GAM cannot learn its effect - use a history where it moves or drop it from the model"
            )
    if y.min() == y.max():
        raise DataError(f"{where}: target '{model.target}' is constant ({y[0]:g}): there is nothing to model")
    return X, y

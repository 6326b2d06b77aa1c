"""The plant's model chain, compiled: every GAM in topological order, predictions fed forward.

A model may read another model's target (oxidation_1 -> oxidation_2 -> concentration -> yield).
For hypothetical setpoints the chain feeds each model the predictions of the models upstream of
it; every other input (disturbances, unmodelled measurements, and derived state estimates such as a
heat-transfer coefficient, evaluated from the current state) stays at its current value. A plant
whose spec states production as an expression (`[production] expression`) gets it as one more
output after the models, computed from the same values.

Anchoring (the bias update real-time optimizers do): at a plant state whose measured value of model
k's target is known, model k is re-anchored by the bias b_k = measured - model, de-noised and taken
against the inputs the measurement answers to (optimizer/anchor.py): ŷ_k(u) = f_k(u) + b_k. At the
current setpoints u0 that is the target's settled value. Downstream models see the anchored upstream
values.

Uncertainty, by the delta method over every independent source at once. Each output's error is
linear in standard-normal components z: the whitened coefficients of every GAM (β_l = β̂_l + R_l z_l
with R_l R_lᵀ = V_l, the calibrated coefficient covariance), and one "own" component per output
(the anchor's uncertainty for an anchored model, the calibrated residual scale for an unanchored
one, none for an expression). With m_k(x) the model-matrix row and a_kj = ∂f_k/∂y_j its
sensitivity to upstream output j, the component row of output k at setpoints u is

    C_k(u) = s_k e_k + m_k(x_k(u)) R_k + Σ_j a_kj(u) C_j(u) - G_k

with G_k = m_k(x_k(u0)) R_k + Σ_j a_kj(u0) C_j(u0) for an anchored model (the part the anchor
replaces) and 0 otherwise. Then

    level variance   Var[ŷ_k(u)]            = |C_k(u)|²           (absolute limits, intervals)
    change variance  Var[ŷ_k(u) - ŷ_k(u0)]  = |C_k(u) - C_k(u0)|²  (limits on "current", the gain)

For one model and no chain the change variance is (m(u) - m(u0)) V (m(u) - m(u0))ᵀ: the uncertainty of
the slope, which a comparison of two prediction bounds cannot see (they move together). Shared
upstream models (yield reads ox2_chp and concentrated_chp, which reads ox2_chp too) are counted
once, with their correlation, because both paths carry the same components.

Gradients wrt the setpoints: values by the chain rule; a variance |C|² by 2 C·dC/du, where dC/du
follows the coefficient rows (m_l through its inputs' gradients) and treats the sensitivities a_kj
as constant over the step (their change would need second derivatives, and is small).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dragon.bundle import Bundle
from dragon.calibration import Calibration
from dragon.errors import BundleError
from dragon.features import DerivedFeature, compile_derived
from dragon.spec import PlantSpec
from optimizer.compiled import CompiledGAM

VERIFY_ROWS = 64
PRODUCTION = "production"  # the output name of a `[production] expression`
EXPRESSION_STEP = 1e-6  # relative central-difference step for an expression's input sensitivities
SMOOTH_SD = 1e-9  # sqrt(var + SMOOTH_SD²): a change sd stays differentiable where the change is zero


@dataclass(frozen=True)
class ChainAnchor:
    """The chain pinned to one plant state (`CompiledChain.anchor`): what `evaluate` needs besides U."""

    biases: np.ndarray  # (K,) anchor - raw prediction at u0 (0 where unanchored)
    anchored: np.ndarray  # (K,) bool
    own_sd: np.ndarray  # (K,) sd of each output's own component (anchor sd or residual scale)
    offsets: np.ndarray  # (K, Q) G_k, the coefficient part an anchor replaces
    current: np.ndarray  # (K, Q) C_k(u0)
    values: np.ndarray  # (K,) the outputs at u0


@dataclass(frozen=True)
class ChainEvaluation:
    """The chain at n setpoint vectors: K outputs (in `outputs` order), S setpoints."""

    outputs: tuple[str, ...]
    values: np.ndarray  # (n, K), anchored
    gradient: np.ndarray  # (n, K, S)  d value / d setpoints
    level_variance: np.ndarray  # (n, K)
    level_variance_gradient: np.ndarray  # (n, K, S)
    change: np.ndarray  # (n, K)  value - value at u0
    change_variance: np.ndarray  # (n, K)
    change_variance_gradient: np.ndarray  # (n, K, S)

    def index(self, output: str) -> int:
        return self.outputs.index(output)

    def level_sd(self, output: str) -> np.ndarray:
        return np.sqrt(self.level_variance[:, self.index(output)])

    def change_sd(self, output: str) -> np.ndarray:
        return np.sqrt(self.change_variance[:, self.index(output)])

    def level_bounds(self, columns: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """value + step·level sd of the outputs at `columns` (n, C) and the gradients (n, C, S); a step is
        ±the quantile of a bound's confidence."""
        return _bounds(
            self.values.take(columns, axis=1),
            self.gradient.take(columns, axis=1),
            self.level_variance.take(columns, axis=1),
            self.level_variance_gradient.take(columns, axis=1),
            steps,
        )

    def change_bounds(self, columns: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """change + step·change sd of the outputs at `columns` (n, C) and the gradients (n, C, S)."""
        return _bounds(
            self.change.take(columns, axis=1),
            self.gradient.take(columns, axis=1),
            self.change_variance.take(columns, axis=1),
            self.change_variance_gradient.take(columns, axis=1),
            steps,
        )


def _bounds(value, gradient, variance, variance_gradient, steps) -> tuple[np.ndarray, np.ndarray]:
    sd = np.sqrt(variance + SMOOTH_SD**2)
    return value + steps * sd, gradient + steps[:, None] * variance_gradient / (2.0 * sd[..., None])


@dataclass(frozen=True)
class _Link:
    """One output and where each of its input columns comes from, as columns of the chain's work table
    (setpoints, then outputs in order, then fixed state tags). A GAM link has `gam`; an expression link
    has `expression`."""

    name: str
    target: str
    inputs: np.ndarray  # (F,) work-table column of each input
    upstream: np.ndarray  # positions among the inputs fed by upstream outputs ...
    upstream_outputs: np.ndarray  # ... and the output index of each
    gam: CompiledGAM | None = None
    root: np.ndarray | None = None  # (p, r) R with R Rᵀ = calibrated covariance
    block: slice = field(default_factory=lambda: slice(0, 0))  # this GAM's columns among the components
    expression: DerivedFeature | None = None


class CompiledChain:
    """All GAMs of a bundle compiled and linked, with their calibration; `anchor(state, anchors)` pins it
    to one plant state and `evaluate(U, state, anchor)` runs it at setpoint rows."""

    def __init__(
        self, spec: PlantSpec, gams: Mapping[str, object], calibration: Calibration, *, verify: bool = True
    ) -> None:
        self.spec = spec
        self.calibration = calibration
        self.models = tuple(spec.model_order)
        production = spec.production
        expression = production.expression if production is not None else None
        self.outputs = self.models + ((PRODUCTION,) if expression else ())
        self.setpoints = tuple(spec.setpoints)
        S, K = len(self.setpoints), len(self.outputs)
        producer = {spec.models[name].target: k for k, name in enumerate(self.models)}
        column = {tag: i for i, tag in enumerate(self.setpoints)}
        column.update({spec.models[name].target: S + k for k, name in enumerate(self.models)})
        fixed: list[str] = []

        def columns_of(features) -> np.ndarray:
            for tag in features:
                if tag not in column:
                    column[tag] = S + K + len(fixed)
                    fixed.append(tag)
            return np.array([column[f] for f in features], dtype=np.intp)

        links, width = [], 0
        for name in self.models:
            model = spec.models[name]
            if name not in gams:
                raise BundleError(f"the bundle has no GAM for model '{name}' of plant '{spec.name}'")
            if name not in calibration.models:
                raise BundleError(f"the bundle's calibration has no entry for model '{name}'")
            compiled = CompiledGAM.from_pygam(gams[name], model.features)
            if verify:
                compiled.verify(compiled.verification_rows(VERIFY_ROWS), gams[name], name=name)
            root = _covariance_root(compiled.cov * calibration.models[name].covariance_scale)
            upstream = [i for i, f in enumerate(model.features) if f in producer]
            links.append(
                _Link(
                    name,
                    model.target,
                    columns_of(model.features),
                    np.array(upstream, dtype=np.intp),
                    np.array([producer[model.features[i]] for i in upstream], dtype=np.intp),
                    gam=compiled,
                    root=root,
                    block=slice(width, width + root.shape[1]),
                )
            )
            width += root.shape[1]
        if expression:
            derived = compile_derived(PRODUCTION, expression, spec.tags)
            upstream = [i for i, f in enumerate(derived.inputs) if f in producer]
            links.append(
                _Link(
                    PRODUCTION,
                    PRODUCTION,
                    columns_of(derived.inputs),
                    np.array(upstream, dtype=np.intp),
                    np.array([producer[derived.inputs[i]] for i in upstream], dtype=np.intp),
                    expression=derived,
                )
            )
        self._links = links
        self._fixed_tags = tuple(fixed)
        # State estimates (derived model inputs) are held at their value in the current state: they
        # describe the plant (fouling, activity), not the setpoints the optimizer moves.
        self._held_estimates = {
            name: feature for name, feature in spec.derived_features.items() if name in self._fixed_tags
        }
        self._table_width = S + K + len(fixed)
        self._components = width + K  # coefficient blocks, then one own component per output
        self.scales = np.array(
            [
                link.gam.scale * calibration.models[link.name].interval_scale if link.gam else 0.0
                for link in links
            ]
        )

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, verify: bool = True) -> CompiledChain:
        return cls(bundle.spec, bundle.gams, bundle.calibration, verify=verify)

    def quantile(self, output: str, probability: float) -> float:
        """The standardised quantile of a bound at `probability` (pygam's t for a GAM)."""
        link = self._links[self.outputs.index(output)]
        return link.gam.quantile(probability) if link.gam else _normal_quantile(probability)

    def gam(self, model: str) -> CompiledGAM:
        return self._links[self.models.index(model)].gam

    def target(self, output: str) -> str:
        return self._links[self.outputs.index(output)].target

    def anchor(self, state: Mapping[str, float], anchors: Mapping[str, tuple[float, float]]) -> ChainAnchor:
        """Pin the chain to `state`: model k with an entry (bias, sd) in `anchors` is anchored, its output
        the raw prediction + bias (the bias update: measured - model, optimizer/anchor.py) with the bias's
        sd as own uncertainty; the others keep their raw prediction and their calibrated residual scale."""
        K = len(self._links)
        anchored = np.array([link.name in anchors for link in self._links])
        own_sd = np.array(
            [
                anchors[link.name][1] if link.name in anchors else self.scales[k]
                for k, link in enumerate(self._links)
            ]
        )
        pinned = ChainAnchor(
            biases=np.zeros(K),
            anchored=anchored,
            own_sd=own_sd,
            offsets=np.zeros((K, self._components)),
            current=np.zeros((K, self._components)),
            values=np.zeros(K),
        )
        u0 = np.array([[state[tag] for tag in self.setpoints]])
        biases = {link.name: anchors[link.name][0] for link in self._links if link.name in anchors}
        evaluation, components = self._run(u0, state, pinned, biases)
        pinned.current[:] = components[0]
        pinned.values[:] = evaluation.values[0]
        return pinned

    def evaluate(self, U: np.ndarray, state: Mapping[str, float], anchor: ChainAnchor) -> ChainEvaluation:
        """The chain at setpoint rows U (n, S) with every other input from `state`."""
        return self._run(U, state, anchor, None)[0]

    def _run(
        self,
        U: np.ndarray,
        state: Mapping[str, float],
        anchor: ChainAnchor,
        biases: Mapping[str, float] | None,
    ) -> tuple[ChainEvaluation, np.ndarray]:
        """Evaluate in order. With `biases` (anchoring at u0), first set each anchored output's bias and
        offset G_k (module docstring) in `anchor`. Returns the evaluation and the components C (n, K, Q)."""
        U = np.asarray(U, dtype=float)
        if U.ndim == 1:
            U = U[None, :]
        n, S = U.shape
        K = len(self._links)
        values = np.empty((n, self._table_width))
        values[:, :S] = U
        values[:, S + K :] = self._fixed_values(state)
        gradients = np.zeros((n, self._table_width, S))
        gradients[:, :S, :] = np.eye(S)
        C = np.zeros((n, K, self._components))
        paths = np.zeros((n, K, K))  # paths[:, k, l] = d output k / d output l through the chain
        coefficient_rows = []  # per GAM output: (index, link, slope rows, d inputs / du)
        out_values = np.empty((n, K))
        out_gradients = np.empty((n, K, S))
        own = self._components - K  # the first own component
        for k, link in enumerate(self._links):
            X = values.take(link.inputs, axis=1)
            dX = gradients.take(link.inputs, axis=1)  # (n, F, S)
            if link.gam is not None:
                M, slopes = link.gam.rows_with_slopes(X)
                mean = M @ link.gam.coef
                sensitivity = link.gam.input_gradient(link.gam.coef, slopes)
                C[:, k, link.block] = M @ link.root
                coefficient_rows.append((k, link, slopes, dX))
            else:
                mean, sensitivity = _expression_with_sensitivity(link.expression, X)
            upstream_weights = sensitivity[:, link.upstream]  # (n, J)
            C[:, k] += np.einsum("nj,njq->nq", upstream_weights, C[:, link.upstream_outputs])
            paths[:, k, k] = 1.0
            paths[:, k] += np.einsum("nj,njl->nl", upstream_weights, paths[:, link.upstream_outputs])
            if biases is not None and anchor.anchored[k]:
                anchor.biases[k] = biases[link.name]
                anchor.offsets[k] = C[0, k]
            C[:, k] -= anchor.offsets[k]
            C[:, k, own + k] = anchor.own_sd[k]
            out_values[:, k] = mean + anchor.biases[k]
            out_gradients[:, k] = np.einsum("nf,nfs->ns", sensitivity, dX)
            if k < len(self.models):  # a model's target feeds the models downstream
                values[:, S + k] = out_values[:, k]
                gradients[:, S + k] = out_gradients[:, k]
        D = C - anchor.current
        evaluation = ChainEvaluation(
            self.outputs,
            out_values,
            out_gradients,
            np.einsum("nkq,nkq->nk", C, C),
            self._variance_gradient(C, paths, coefficient_rows),
            out_values - anchor.values,
            np.einsum("nkq,nkq->nk", D, D),
            self._variance_gradient(D, paths, coefficient_rows),
        )
        return evaluation, C

    def _fixed_values(self, state: Mapping[str, float]) -> list[float]:
        """The inputs the setpoints do not move, from `state`: tags as read, state estimates evaluated."""
        held = self._held_estimates
        return [held[tag].evaluate_state(state) if tag in held else state[tag] for tag in self._fixed_tags]

    @staticmethod
    def _variance_gradient(C: np.ndarray, paths: np.ndarray, coefficient_rows) -> np.ndarray:
        """d |C_k|² / du (n, K, S) = 2 Σ_l paths[k, l] · (R_l C_k,l)ᵀ dm_l/du over the GAM outputs l."""
        n, K, _ = C.shape
        S = coefficient_rows[0][3].shape[2] if coefficient_rows else 0
        gradient = np.zeros((n, K, S))
        for source, link, slopes, dX in coefficient_rows:
            weights = C[:, :, link.block] @ link.root.T  # (n, K, p): R_l C_k,l for every k
            by_input = link.gam.input_gradient(weights, slopes[:, None, :])  # (n, K, F)
            gradient += 2.0 * paths[:, :, source, None] * np.einsum("nkf,nfs->nks", by_input, dX)
        return gradient


def output_units(spec: PlantSpec) -> dict[str, str]:
    """The unit of every chain output: a model's is its target tag's, production's the spec's."""
    units = {name: spec.tags[model.target].unit for name, model in spec.models.items()}
    if spec.production is not None and spec.production.expression:
        units[PRODUCTION] = spec.production.unit
    return units


def _covariance_root(cov: np.ndarray) -> np.ndarray:
    """R (p, r) with R Rᵀ = cov, over its non-negligible eigen-directions (cov is only semi-definite)."""
    eigval, eigvec = np.linalg.eigh((cov + cov.T) / 2.0)
    keep = eigval > max(eigval.max(), 0.0) * 1e-12
    return eigvec[:, keep] * np.sqrt(eigval[keep])


def _expression_with_sensitivity(expression: DerivedFeature, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An expression's values (n,) and its central-difference input sensitivities (n, F)."""
    columns = dict(zip(expression.inputs, X.T, strict=True))
    value = expression.evaluate_columns(columns)
    sensitivity = np.empty(X.shape)
    for i, tag in enumerate(expression.inputs):
        step = EXPRESSION_STEP * np.maximum(np.abs(X[:, i]), 1.0)
        up = expression.evaluate_columns({**columns, tag: X[:, i] + step})
        down = expression.evaluate_columns({**columns, tag: X[:, i] - step})
        sensitivity[:, i] = (up - down) / (2.0 * step)
    return value, sensitivity


def _normal_quantile(probability: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(probability))

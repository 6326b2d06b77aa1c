"""The plant's model chain, compiled: every GAM in topological order, predictions fed forward.

A model may read another model's target (oxidation_1 -> oxidation_2 -> concentration -> yield).
For hypothetical setpoints the chain feeds each model the predictions of the models upstream of
it; every other input (disturbances, unmodelled measurements) stays at its current value.

Gradients with respect to the setpoints follow the chain rule through those links.

Uncertainty is propagated by first-order linearisation, assuming the models' errors are
independent:  var(y_k) = se_k² + Σ_j (∂f_k/∂y_j)² var(y_j), over the upstream models j that
model k reads, with se_k the standard error of model k's mean. A prediction bound adds model k's
residual scale², as pygam's prediction intervals do. The gradient of var(y_k) is exact for se_k²
and for the var(y_j) terms, but treats the sensitivities (∂f_k/∂y_j)² as constant (their change
would need second derivatives, and it is tiny next to the scale² that dominates the bound).

Bias update (as real-time optimizers do): at a plant state whose measured value of model k's
target is known, model k is re-anchored so that it reproduces the measurement at the current
setpoints: ŷ_k(u) = f_k(u) - f_k(u0) + measured_k. Downstream models then see the measured
upstream values at u0, exactly the inputs they were trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dragon.bundle import Bundle
from dragon.errors import BundleError
from dragon.spec import PlantSpec
from optimizer.compiled import CompiledGAM

VERIFY_ROWS = 64


@dataclass(frozen=True)
class ChainEvaluation:
    """The chain at n setpoint vectors: K models (in `models` order), S setpoints."""

    models: tuple[str, ...]
    values: np.ndarray  # (n, K), bias-corrected
    gradient: np.ndarray  # (n, K, S)  d value / d setpoints
    variance: np.ndarray  # (n, K)  variance of the mean prediction (propagated)
    variance_gradient: np.ndarray  # (n, K, S)
    scales: np.ndarray  # (K,)  residual standard deviation of each model
    quantile: tuple  # per model: probability -> standardised quantile

    def index(self, model: str) -> int:
        return self.models.index(model)

    def prediction_sd(self, model: str) -> np.ndarray:
        k = self.index(model)
        return np.sqrt(self.variance[:, k] + self.scales[k] ** 2)

    def bound(
        self, model: str, confidence: float, side: Literal["upper", "lower"]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One-sided prediction bound of `model` at `confidence`, and its gradient (n,), (n, S)."""
        k = self.index(model)
        step = (1.0 if side == "upper" else -1.0) * self.quantile[k](confidence)
        bounds, gradients = self.bounds(np.array([k]), np.array([step]))
        return bounds[:, 0], gradients[:, 0, :]

    def bounds(self, columns: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """value + step·sd of the models at `columns` (n, C), with sd = sqrt(variance + scale²), and
        the gradients (n, C, S); a step is ±the quantile of a bound's confidence."""
        sd = np.sqrt(self.variance.take(columns, axis=1) + self.scales.take(columns) ** 2)
        d_sd = self.variance_gradient.take(columns, axis=1) / (2.0 * sd[..., None])
        values = self.values.take(columns, axis=1) + steps * sd
        return values, self.gradient.take(columns, axis=1) + steps[:, None] * d_sd


@dataclass(frozen=True)
class _ModelLink:
    """Where each input column of one model comes from, as columns of the chain's work table
    (setpoints, then model predictions in order, then fixed state tags)."""

    name: str
    gam: CompiledGAM
    inputs: np.ndarray  # (F,) work-table column of each input
    upstream: np.ndarray  # input columns fed by upstream models ...
    upstream_inputs: np.ndarray  # ... and their work-table columns


class CompiledChain:
    """All GAMs of a bundle compiled and linked; `evaluate(U, state, biases)` runs them at one plant state.

    An evaluation fills a work table whose columns are the setpoints, the models' predictions (in
    order) and the fixed state tags, with each column's derivative wrt the setpoints and its variance:
    a model reads its inputs as one gather from the table, and the chain rule is one product with the
    gathered derivatives."""

    def __init__(self, spec: PlantSpec, gams: Mapping[str, object], *, verify: bool = True) -> None:
        self.spec = spec
        self.models = tuple(spec.model_order)
        self.setpoints = tuple(spec.setpoints)
        S, K = len(self.setpoints), len(self.models)
        producer = {spec.models[name].target: name for name in self.models}
        column = {tag: i for i, tag in enumerate(self.setpoints)}
        column.update({spec.models[name].target: S + k for k, name in enumerate(self.models)})
        fixed: list[str] = []
        links = []
        for name in self.models:
            features = spec.models[name].features
            if name not in gams:
                raise BundleError(f"the bundle has no GAM for model '{name}' of plant '{spec.name}'")
            compiled = CompiledGAM.from_pygam(gams[name], features)
            if verify:
                compiled.verify(compiled.verification_rows(VERIFY_ROWS), gams[name], name=name)
            for tag in features:
                if tag not in column:
                    column[tag] = S + K + len(fixed)
                    fixed.append(tag)
            inputs = np.array([column[f] for f in features], dtype=np.intp)
            upstream = np.array([c for c, f in enumerate(features) if f in producer], dtype=np.intp)
            links.append(_ModelLink(name, compiled, inputs, upstream, inputs[upstream]))
        self._links = links
        self._fixed_tags = tuple(fixed)
        self._width = S + K + len(fixed)
        self._identity = np.eye(S)  # d setpoint / d setpoints
        self.scales = np.array([link.gam.scale for link in links])
        self._quantiles = tuple(_quantile_function(link.gam) for link in links)

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, verify: bool = True) -> CompiledChain:
        return cls(bundle.spec, bundle.gams, verify=verify)

    def quantile(self, model: str, probability: float) -> float:
        return self._quantiles[self.models.index(model)](probability)

    def gam(self, model: str) -> CompiledGAM:
        return self._links[self.models.index(model)].gam

    def evaluate(
        self, U: np.ndarray, state: Mapping[str, float], biases: np.ndarray | None = None
    ) -> ChainEvaluation:
        """The chain at setpoint rows U (n, S) with every other input from `state`."""
        return self._run(U, state, np.zeros(len(self._links)) if biases is None else biases, None)

    def biases(self, state: Mapping[str, float]) -> np.ndarray:
        """Bias-update offsets measured - predicted at the state's setpoints (0 where unmeasured).

        Models are anchored in order, so a downstream model is evaluated on its upstream models'
        anchored (= measured) values."""
        u0 = np.array([[state[tag] for tag in self.setpoints]])
        offsets = np.zeros(len(self._links))
        measured = [self.spec.models[name].target in state for name in self.models]
        self._run(u0, state, offsets, measured)
        return offsets

    def _run(
        self,
        U: np.ndarray,
        state: Mapping[str, float],
        biases: np.ndarray,
        anchor: list[bool] | None,
    ) -> ChainEvaluation:
        """Evaluate in order; with `anchor`, first set biases[k] = measured - predicted where anchor[k].

        Work table `table` (n, width, 2S+1) holds per column [d value/du (S) | d variance/du (S) |
        variance]; setpoints and state tags have variance 0. For model k with input sensitivities
        J0 = df/dx and own variance gradient J1 = d se²/dx, one product of [J0, J1, J0²] with its
        inputs' rows gives d value/du = J0·G, d se²/du = J1·G and the propagated parts
        Σ J0² var_in, Σ J0² d var_in/du."""
        U = np.asarray(U, dtype=float)
        if U.ndim == 1:
            U = U[None, :]
        n, S = U.shape
        K = len(self._links)
        values = np.empty((n, self._width))
        values[:, :S] = U
        values[:, S + K :] = [state[tag] for tag in self._fixed_tags]
        table = np.zeros((n, self._width, 2 * S + 1))
        table[:, :S, :S] = self._identity
        for k, link in enumerate(self._links):
            mean, own_variance, J = link.gam.moments(values.take(link.inputs, axis=1))
            if anchor is not None and anchor[k]:  # biases[k] is still 0: mean is model k's raw prediction
                biases[k] = state[self.spec.models[link.name].target] - mean[0]
            col = S + k
            values[:, col] = mean + biases[k]
            weights = np.empty((n, 3, len(link.inputs)))
            weights[:, :2] = J
            np.square(J[:, 0], out=weights[:, 2])
            product = weights @ table.take(link.inputs, axis=1)  # (n, 3, 2S+1)
            row = table[:, col]
            row[:, :S] = product[:, 0, :S]
            np.add(product[:, 1, :S], product[:, 2, S : 2 * S], out=row[:, S : 2 * S])
            row[:, 2 * S] = own_variance + product[:, 2, 2 * S]
        models = slice(S, S + K)
        return ChainEvaluation(
            self.models,
            values[:, models],
            table[:, models, :S],
            table[:, models, 2 * S],
            table[:, models, S : 2 * S],
            self.scales,
            self._quantiles,
        )


def _quantile_function(gam: CompiledGAM):
    cache: dict[float, float] = {}

    def quantile(probability: float) -> float:
        if probability not in cache:
            cache[probability] = gam.quantile(probability)
        return cache[probability]

    return quantile

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
        q = self.quantile[k](confidence)
        sd = np.sqrt(self.variance[:, k] + self.scales[k] ** 2)
        d_sd = self.variance_gradient[:, k, :] / (2.0 * sd[:, None])
        sign = 1.0 if side == "upper" else -1.0
        return self.values[:, k] + sign * q * sd, self.gradient[:, k, :] + sign * q * d_sd


@dataclass(frozen=True)
class _ModelLink:
    """Where each input column of one model comes from."""

    name: str
    gam: CompiledGAM
    setpoint_columns: np.ndarray  # columns fed by setpoints ...
    setpoint_index: np.ndarray  # ... and which setpoint
    upstream_columns: np.ndarray  # columns fed by upstream models ...
    upstream_index: np.ndarray  # ... and which model (position in the order)
    fixed_columns: np.ndarray  # columns held at the state's value ...
    fixed_tags: tuple[str, ...]  # ... and which tag
    selector: np.ndarray  # (F, S): d input / d setpoints for the setpoint columns


class CompiledChain:
    """All GAMs of a bundle compiled and linked; `at(state)` fixes a plant state for optimization."""

    def __init__(self, spec: PlantSpec, gams: Mapping[str, object], *, verify: bool = True) -> None:
        self.spec = spec
        self.models = tuple(spec.model_order)
        self.setpoints = tuple(spec.setpoints)
        position = {name: i for i, name in enumerate(self.models)}
        producer = {spec.models[name].target: name for name in self.models}
        setpoint_position = {tag: i for i, tag in enumerate(self.setpoints)}
        links = []
        for name in self.models:
            features = spec.models[name].features
            if name not in gams:
                raise BundleError(f"the bundle has no GAM for model '{name}' of plant '{spec.name}'")
            compiled = CompiledGAM.from_pygam(gams[name], features)
            if verify:
                compiled.verify(compiled.verification_rows(VERIFY_ROWS), gams[name], name=name)
            sp = [(c, setpoint_position[f]) for c, f in enumerate(features) if f in setpoint_position]
            up = [(c, position[producer[f]]) for c, f in enumerate(features) if f in producer]
            fixed = [
                (c, f) for c, f in enumerate(features) if f not in setpoint_position and f not in producer
            ]
            links.append(
                _ModelLink(
                    name,
                    compiled,
                    np.array([c for c, _ in sp], dtype=np.intp),
                    np.array([i for _, i in sp], dtype=np.intp),
                    np.array([c for c, _ in up], dtype=np.intp),
                    np.array([i for _, i in up], dtype=np.intp),
                    np.array([c for c, _ in fixed], dtype=np.intp),
                    tuple(f for _, f in fixed),
                    _selector(len(features), len(self.setpoints), sp),
                )
            )
        self._links = links
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
        U = np.atleast_2d(np.asarray(U, dtype=float))
        n, S = U.shape
        K = len(self._links)
        values = np.empty((n, K))
        gradient = np.zeros((n, K, S))
        variance = np.empty((n, K))
        variance_gradient = np.zeros((n, K, S))
        for k, link in enumerate(self._links):
            X = np.empty((n, link.gam.n_features))
            X[:, link.setpoint_columns] = U[:, link.setpoint_index]
            X[:, link.upstream_columns] = values[:, link.upstream_index]
            X[:, link.fixed_columns] = [state[tag] for tag in link.fixed_tags]
            ev = link.gam.evaluate(X)
            values[:, k] = ev.mean + (0.0 if biases is None else biases[k])
            # d/du = direct (setpoint inputs) + through each upstream model's prediction.
            gradient[:, k, :] = ev.gradient @ link.selector
            se_gradient = ev.se_gradient @ link.selector
            variance[:, k] = ev.se**2
            if len(link.upstream_index):
                upstream_gradient = gradient[:, link.upstream_index, :]  # (n, J, S)
                sensitivity = ev.gradient[:, None, link.upstream_columns]  # (n, 1, J)
                gradient[:, k, :] += (sensitivity @ upstream_gradient)[:, 0, :]
                se_gradient += (ev.se_gradient[:, None, link.upstream_columns] @ upstream_gradient)[:, 0, :]
                squared = sensitivity**2
                variance[:, k] += (squared[:, 0, :] * variance[:, link.upstream_index]).sum(axis=1)
                variance_gradient[:, k, :] = (squared @ variance_gradient[:, link.upstream_index, :])[:, 0, :]
            variance_gradient[:, k, :] += 2.0 * ev.se[:, None] * se_gradient
        return ChainEvaluation(
            self.models, values, gradient, variance, variance_gradient, self.scales, self._quantiles
        )

    def biases(self, state: Mapping[str, float]) -> np.ndarray:
        """Bias-update offsets measured - predicted at the state's setpoints (0 where unmeasured).

        Models are anchored in order, so a downstream model is evaluated on its upstream models'
        anchored (= measured) values."""
        u0 = np.array([[state[tag] for tag in self.setpoints]])
        offsets = np.zeros(len(self._links))
        for k, name in enumerate(self.models):
            target = self.spec.models[name].target
            if target in state:  # offsets[k] is still 0 here: the value is model k's raw prediction
                offsets[k] = state[target] - self.evaluate(u0, state, offsets).values[0, k]
        return offsets


def _selector(n_features: int, n_setpoints: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    selector = np.zeros((n_features, n_setpoints))
    for column, setpoint in pairs:
        selector[column, setpoint] = 1.0
    return selector


def _quantile_function(gam: CompiledGAM):
    cache: dict[float, float] = {}

    def quantile(probability: float) -> float:
        if probability not in cache:
            cache[probability] = gam.quantile(probability)
        return cache[probability]

    return quantile

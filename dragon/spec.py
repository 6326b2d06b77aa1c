"""The plant spec: one TOML file that describes a plant (ARCHITECTURE.md).

`load_plant(path)` parses and validates the file into a `PlantSpec` and reports
*every* mistake of the file at once, each naming the file, the table and the key.
Nothing about the default plant is hard-coded anywhere else: a plant with other
tags and another model chain goes through the same code.
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dragon.errors import SpecError
from dragon.features import DerivedFeature, ExpressionError, compile_derived

Role = Literal["setpoint", "disturbance", "measurement"]
Shape = Literal["monotonic_inc", "monotonic_dec", "convex", "concave"]
DEFAULT_PLANT = "yet_dragon.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tag(_Strict):
    name: str = ""
    unit: str = ""
    role: Role
    valid: tuple[float, float]
    bounds: tuple[float, float] | None = None
    max_move: float | None = Field(default=None, gt=0)
    description: str = ""

    @property
    def reach(self) -> tuple[float, float]:
        """A setpoint's values one recommendation can bring back inside its bounds (bounds widened by
        max_move); the recommender blocks a state beyond them (optimizer/problem.py: setpoint_box)."""
        low, high = self.bounds
        return low - self.max_move, high + self.max_move


class GamModel(_Strict):
    name: str = ""
    target: str
    features: list[str] = Field(min_length=1)
    interactions: list[tuple[str, str]] = []
    shape: dict[str, Shape] = {}
    n_splines: int = Field(default=10, ge=4, le=40)
    lam_grid: list[float] = [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5]
    # blocked_cv: smoothing chosen by cross-validation over contiguous time blocks, honest when
    # neighbouring rows are correlated and the plant drifts; gcv: pygam's criterion (assumes
    # independent errors, so it under-smooths minute-resolution plant data).
    selection: Literal["blocked_cv", "gcv"] = "blocked_cv"
    cv_blocks: int = Field(default=5, ge=2, le=20)
    # First-order time constant of the target's response to its inputs, in hours. With a lag the
    # model trains on every normal row through lag-compensated inputs (dragon/dynamics.py);
    # 0 = a static model trained on the rows the steady-state test keeps.
    lag_hours: float = Field(default=0.0, ge=0.0, le=48.0)
    # The sensor consistency check (optimizer/recommender.py: a measured target further than [optimizer]
    # consistency_sigma from its model blocks) judges this model's target. Off for a model whose error
    # follows a hidden state none of its inputs estimates: weeks after training its drift reads as a
    # biased analyser.
    consistency_check: bool = True


class DerivedSpec(_Strict):
    """A feature computed from tags (dragon/features.py), e.g. a temperature approach. Detectors read it, and
    so may models: as a state estimate (a heat-transfer coefficient, a catalyst activity) that the optimizer
    holds at its current value while it moves the setpoints."""

    name: str = ""
    expression: str
    unit: str = ""
    description: str = ""


Margin = Annotated[float, Field(ge=0.0)]  # an envelope margin, in spreads of the normal range


class DetectorSpec(_Strict):
    """An Isolation Forest over tags and/or derived features, plus a per-feature range envelope.

    The envelope per feature is [q_low - m*(q_high - q_low), q_high + m*(q_high - q_low)] with q_low/q_high
    the `envelope_quantile` / 1 - `envelope_quantile` quantiles of the normal training rows and m =
    `envelope_margin` (or the feature's entry in `envelope_margins`, one m or [below, above]); a row outside
    it is flagged even where the forest's score saturates. A per-feature margin lets one detector watch a
    sharp indicator (a heat-transfer estimate) closely while its other features keep the wide default.
    """

    name: str = ""
    features: list[str] = Field(min_length=2)
    contamination: float = Field(default=0.01, gt=0, lt=0.5)
    n_estimators: int = Field(default=100, ge=10, le=1000)
    envelope: bool = True
    envelope_quantile: float = Field(default=0.001, ge=0.0, lt=0.5)
    envelope_margin: float = Field(default=0.5, ge=0.0)
    # one margin for both sides, or [below, above]: a heat-transfer estimate is watched closely below
    # (fouling) and loosely above (a cleaning makes it higher than the training saw, which is no fault)
    envelope_margins: dict[str, Margin | tuple[Margin, Margin]] = {}

    def margin_of(self, feature: str) -> tuple[float, float]:
        """(below, above) margin of `feature`'s envelope, in spreads."""
        margin = self.envelope_margins.get(feature, self.envelope_margin)
        return (margin, margin) if isinstance(margin, float | int) else tuple(margin)


class Objective(_Strict):
    maximize: str | None = None
    minimize: str | None = None

    @property
    def model(self) -> str:
        return self.maximize or self.minimize or ""

    @property
    def sense(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.maximize else "minimize"


Bound = float | Literal["current"]


class Constraint(_Strict):
    model: str
    max: Bound | None = None
    min: Bound | None = None
    confidence: float = Field(default=0.95, ge=0.5, lt=1.0)
    tolerance: float = Field(default=0.0, ge=0)


class SteadyStateSettings(_Strict):
    """Cao–Rhinehart style steady-state detection (training/transforms.py)."""

    enabled: bool = True
    tags: list[str] = []  # empty = the four model targets
    window_minutes: int = Field(default=60, ge=5)
    ratio_threshold: float = Field(default=2.0, gt=1.0)
    hold_minutes: int = Field(default=30, ge=0)


class TrainingSettings(_Strict):
    resample_minutes: int = Field(default=10, ge=1)
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    min_rows: int = Field(default=200, ge=10)
    frozen_minutes: int = Field(default=240, ge=2)
    # On AWS the training workflow transforms a history in a Lambda (3 GB of memory, 15 minutes) up to this
    # size, in MB as stored (the S3 objects read, or the Athena query's result CSV), and above it in an ECS
    # Fargate task (deploy/templates/stack.yaml): a Parquet history takes 5-10 times its size in memory.
    fargate_above_mb: float = Field(default=256.0, gt=0.0)


class OptimizerSettings(_Strict):
    min_benefit: float = Field(default=0.01, ge=0)
    starts: int = Field(default=6, ge=1, le=64)
    # The optimizer maximises the lower bound gain - risk_aversion * sd(gain) (sd of the predicted
    # change, optimizer/chain.py): a direction the data barely supports is not worth its risk.
    risk_aversion: float = Field(default=1.0, ge=0.0, le=5.0)
    # Sensor consistency: a measured model target further than this many of its model's state
    # residual sd from the model's prediction at the current state blocks the recommendation
    # ("model and measurement disagree on TAG"); 0 turns the check off.
    consistency_sigma: float = Field(default=4.0, ge=0.0)


class Production(_Strict):
    """The plant's production, held at a confidence: a model (`model`) or an expression over tags and model
    targets (`expression`, dragon/features.py syntax). A recommendation whose production bound at
    `confidence` falls more than `tolerance` (a share of the current production) below the current
    production is never made."""

    model: str | None = None
    expression: str | None = None
    unit: str = ""
    tolerance: float = Field(default=0.005, ge=0.0, lt=1.0)
    confidence: float = Field(default=0.9, ge=0.5, lt=1.0)


class DriftSettings(_Strict):
    psi_warn: float = 0.1
    psi_alert: float = 0.2
    ks_alert: float = 0.1
    shift_alert: float = 0.5  # mean shift, in training standard deviations, that matters
    min_rows: int = 200
    error_growth_tolerance: float = 0.5


class PromotionSettings(_Strict):
    """Champion/challenger: the challenger may not be worse than this (relative RMSE)."""

    models: list[str] = []  # empty = the objective model and the constrained models
    tolerance: float = Field(default=0.02, ge=0)


class SimulatorSpec(_Strict):
    """The plant's simulator for `dragon trial`: "package.module:Class" implementing
    dragon/simulator/protocol.py (the spec file's folder is searched first)."""

    entry_point: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class Economics(_Strict):
    """Prices that turn a trial's tonnes into money. The yield (the objective, % of the feed) and the
    production (t/h of product) come from the simulator; feed consumed = production x
    feed_per_product / (yield / 100)."""

    currency: str = "USD"
    product_price: float = Field(gt=0)  # currency per t of product
    feed_price: float = Field(gt=0)  # currency per t of feed
    feed_per_product: float = Field(gt=0)  # t of feed per t of product at 100 % yield (stoichiometry)
    hours_per_year: float = Field(default=8000.0, gt=0, le=8784)  # on-stream hours
    source: str = ""  # where the prices come from


class ModelFloors(_Strict):
    """Floors on one model's hold-out figures (training/evaluation.py); None = not checked."""

    r2: float | None = Field(default=None, le=1.0)  # hold-out R² against the measured target, at least
    # hold-out RMSE / RMSE of naive persistence (the target `lag_hours` earlier stays where it was), at most
    rmse_ratio: float | None = Field(default=None, gt=0.0)
    # hold-out share inside the calibrated 95 % interval (cross-conformal, training/calibration.py), at least
    coverage: float | None = Field(default=None, ge=0.0, le=1.0)


class QualityFloors(ModelFloors):
    """`[quality]`: what a version must meet to lead. A version below a floor is registered (for the
    record) but rejected: never approved automatically, never champion, deployed only when forced with a
    logged reason. The model floors at the top apply to every model; `[quality.models.<name>]` replaces
    them key by key for one model. Gate floors are over the hold-out period and skipped when it holds no
    episode (recall) or no normal row (false alarms)."""

    models: dict[str, ModelFloors] = {}
    gate_recall: float | None = Field(default=None, ge=0.0, le=1.0)  # share of process-episode rows blocked
    false_alarm: float | None = Field(default=None, ge=0.0, le=1.0)  # share of normal rows blocked, at most

    def for_model(self, name: str) -> ModelFloors:
        own = self.models.get(name)
        common = ModelFloors(r2=self.r2, rmse_ratio=self.rmse_ratio, coverage=self.coverage)
        return common.model_copy(update={k: getattr(own, k) for k in own.model_fields_set}) if own else common


#: On AWS every resource of a project is named after its plant (endpoint, models, training jobs, stacks, the
#: ECR repository, S3 prefixes): SageMaker allows letters, digits and hyphens, ECR and S3 only lowercase ones,
#: and 40 characters leave room for `-<env>-v<version>-<deployment id>` within SageMaker's 63.
PLANT_NAME_PATTERN = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
PLANT_NAME_MAX = 40


class PlantInfo(_Strict):
    name: str
    time_column: str = "timestamp"
    description: str = ""

    @field_validator("name")
    @classmethod
    def _aws_name(cls, name: str) -> str:
        if len(name) <= PLANT_NAME_MAX and PLANT_NAME_PATTERN.match(name):
            return name
        suggestion = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:PLANT_NAME_MAX] or "my-plant"
        raise ValueError(
            f"{name!r} breaks AWS naming (SageMaker, S3 and ECR names carry it): lowercase letters, digits "
            f"and hyphens, starting and ending with a letter or digit, at most {PLANT_NAME_MAX} characters, "
            f"e.g. {suggestion!r}"
        )


class PlantSpec(_Strict):
    plant: PlantInfo
    tags: dict[str, Tag]
    models: dict[str, GamModel]
    derived: dict[str, DerivedSpec] = {}
    detectors: dict[str, DetectorSpec] = {}
    objective: Objective
    constraints: list[Constraint] = []
    steady_state: SteadyStateSettings = SteadyStateSettings()
    training: TrainingSettings = TrainingSettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    production: Production | None = None
    drift: DriftSettings = DriftSettings()
    promotion: PromotionSettings = PromotionSettings()
    simulator: SimulatorSpec | None = None
    economics: Economics | None = None
    quality: QualityFloors = QualityFloors()
    source_text: str = ""
    source_path: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    @field_validator("tags", "models", "derived", "detectors", mode="before")
    @classmethod
    def _name_each_table(cls, tables: dict) -> dict:
        if not isinstance(tables, dict):
            return tables
        return {k: ({"name": k, **v} if isinstance(v, dict) else v) for k, v in tables.items()}

    @property
    def name(self) -> str:
        return self.plant.name

    @property
    def time_column(self) -> str:
        return self.plant.time_column

    def tags_with_role(self, role: Role) -> list[str]:
        return [name for name, tag in self.tags.items() if tag.role == role]

    @property
    def setpoints(self) -> list[str]:
        return self.tags_with_role("setpoint")

    @property
    def disturbances(self) -> list[str]:
        return self.tags_with_role("disturbance")

    @property
    def measurements(self) -> list[str]:
        return self.tags_with_role("measurement")

    @property
    def model_targets(self) -> dict[str, str]:
        """Model name -> target tag."""
        return {name: model.target for name, model in self.models.items()}

    @property
    def model_order(self) -> list[str]:
        """Model names in topological order: a model comes after every model it feeds on."""
        return _topological_order(self.models)

    @cached_property
    def derived_features(self) -> dict[str, DerivedFeature]:
        """The `[derived.*]` expressions, checked and compiled once (dragon/features.py)."""
        return {name: compile_derived(name, d.expression, self.tags) for name, d in self.derived.items()}

    def _tags_read(self, features) -> set[str]:
        """The tags behind `features`: a tag itself, a derived feature's input tags."""
        tags: set[str] = set()
        for feature in features:
            if feature in self.derived:
                tags.update(self.derived_features[feature].inputs)
            else:
                tags.add(feature)
        return tags

    @property
    def model_derived_inputs(self) -> list[str]:
        """Derived features some model reads: state estimates held at their current value by the optimizer
        (optimizer/chain.py), computed before training (training/dynamics.py)."""
        read = {f for model in self.models.values() for f in model.features}
        return [name for name in self.derived if name in read]

    @property
    def used_tags(self) -> list[str]:
        """Every tag a model or detector reads (directly or through a derived feature) or predicts, in spec
        order."""
        used = self._tags_read(f for detector in self.detectors.values() for f in detector.features)
        for model in self.models.values():
            used.update(self._tags_read(model.features))
            used.add(model.target)
        return [name for name in self.tags if name in used]

    @property
    def required_state_tags(self) -> list[str]:
        """Tags a plant state must carry to be recommended on: every model and detector input (including the
        tags of the derived features they read). A model target that nothing reads is optional (used for the
        bias update when present)."""
        features = [f for d in self.detectors.values() for f in d.features]
        features += [f for m in self.models.values() for f in m.features]
        required = self._tags_read(features)
        return [name for name in self.used_tags if name in required]


def _topological_order(models: dict[str, GamModel]) -> list[str]:
    producer = {model.target: name for name, model in models.items()}
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for feature in models[name].features:
            upstream = producer.get(feature)
            if upstream and state.get(upstream) != "visiting":
                visit(upstream)
        state[name] = "done"
        order.append(name)

    for name in models:
        visit(name)
    return order


def _find_cycle(models: dict[str, GamModel]) -> list[str] | None:
    producer = {model.target: name for name, model in models.items()}
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = 1
        stack.append(name)
        for feature in models[name].features:
            upstream = producer.get(feature)
            if upstream is None:
                continue
            if colour.get(upstream) == 1:
                return stack[stack.index(upstream) :] + [upstream]
            if colour.get(upstream) is None:
                found = visit(upstream)
                if found:
                    return found
        stack.pop()
        colour[name] = 2
        return None

    for name in models:
        if colour.get(name) is None:
            found = visit(name)
            if found:
                return found
    return None


def _downstream_targets(models: dict[str, GamModel], name: str) -> set[str]:
    """The target of model `name` and of every model that reads it, directly or through the chain."""
    targets, frontier = set(), [name]
    while frontier:
        current = frontier.pop()
        if models[current].target in targets:
            continue
        targets.add(models[current].target)
        frontier.extend(other for other, m in models.items() if models[current].target in m.features)
    return targets


def _derived_input_problems(spec: PlantSpec, name: str, feature: str) -> list[str]:
    """A derived model input is a state estimate: it may not read what the model predicts, its own target or
    the target of a model downstream of it (that would hand the model its answer)."""
    try:
        inputs = compile_derived(feature, spec.derived[feature].expression, spec.tags).inputs
    except ExpressionError:
        return []  # reported against [derived.<feature>]
    leaked = [tag for tag in inputs if tag in _downstream_targets(spec.models, name)]
    if not leaked:
        return []
    return [
        f"[models.{name}] features: derived feature '{feature}' reads {', '.join(leaked)}, which the model "
        "predicts (its own target or one downstream of it); a model input may not contain its answer"
    ]


def _schema_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if part not in ("tuple[float, float]",))
        where = f"[{location}]" if location else "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{where}: {message}")
    return problems


def _semantic_problems(spec: PlantSpec) -> list[str]:
    """Cross-table checks pydantic cannot express; every problem, not the first."""
    problems: list[str] = []
    tags = spec.tags

    for name, tag in tags.items():
        where = f"[tags.{name}]"
        low, high = tag.valid
        if low >= high:
            problems.append(f"{where} valid: lower limit {low} is not below upper limit {high}")
        if tag.role == "setpoint":
            if tag.bounds is None:
                problems.append(f"{where} bounds: a setpoint needs bounds (its operating window)")
            if tag.max_move is None:
                problems.append(
                    f"{where} max_move: a setpoint needs max_move (largest change per recommendation)"
                )
        if tag.bounds is not None:
            b_low, b_high = tag.bounds
            if b_low >= b_high:
                problems.append(f"{where} bounds: lower bound {b_low} is not below upper bound {b_high}")
            if b_low < low or b_high > high:
                problems.append(
                    f"{where} bounds: {list(tag.bounds)} lies outside the valid range {list(tag.valid)}"
                )

    targets: dict[str, str] = {}
    for name, model in spec.models.items():
        where = f"[models.{name}]"
        if model.target not in tags:
            problems.append(f"{where} target: unknown tag '{model.target}'")
        elif tags[model.target].role != "measurement":
            problems.append(
                f"{where} target: '{model.target}' is a {tags[model.target].role}, "
                "a model target must be a measurement"
            )
        if model.target in targets:
            problems.append(
                f"{where} target: '{model.target}' is already the target of model '{targets[model.target]}'"
            )
        targets.setdefault(model.target, name)
        seen: set[str] = set()
        for feature in model.features:
            if feature in spec.derived and feature not in tags:
                problems.extend(_derived_input_problems(spec, name, feature))
            elif feature not in tags:
                problems.append(f"{where} features: unknown tag or derived feature '{feature}'")
            if feature in seen:
                problems.append(f"{where} features: duplicate feature '{feature}'")
            if feature == model.target:
                problems.append(f"{where} features: the target '{feature}' cannot be its own feature")
            seen.add(feature)
        for pair in model.interactions:
            for feature in pair:
                if feature not in tags and feature not in spec.derived:
                    problems.append(f"{where} interactions: unknown tag or derived feature '{feature}'")
                elif feature not in model.features:
                    problems.append(f"{where} interactions: '{feature}' is not one of the model's features")
            if pair[0] == pair[1]:
                problems.append(f"{where} interactions: '{pair[0]}' interacts with itself")
        for feature in model.shape:
            if feature not in model.features:
                problems.append(f"{where} shape: '{feature}' is not one of the model's features")

    for name, derived in spec.derived.items():
        where = f"[derived.{name}]"
        if name in tags:
            problems.append(f"{where}: '{name}' is already a tag; give the derived feature another name")
        try:
            compile_derived(name, derived.expression, tags)
        except ExpressionError as error:
            problems.extend(f"{where} expression: {problem}" for problem in error.problems)

    for name, detector in spec.detectors.items():
        where = f"[detectors.{name}]"
        for feature in detector.features:
            if feature not in tags and feature not in spec.derived:
                problems.append(f"{where} features: unknown tag or derived feature '{feature}'")
        if len(set(detector.features)) != len(detector.features):
            problems.append(f"{where} features: duplicate feature")
        for feature in detector.envelope_margins:
            if feature not in detector.features:
                problems.append(
                    f"{where} envelope_margins: '{feature}' is not one of the detector's features"
                )

    cycle = _find_cycle(spec.models) if all(m.target in tags for m in spec.models.values()) else None
    if cycle:
        problems.append(f"[models] the model chain has a cycle: {' -> '.join(cycle)}")

    objective = spec.objective
    if bool(objective.maximize) == bool(objective.minimize):
        problems.append("[objective]: give exactly one of maximize or minimize")
    elif objective.model not in spec.models:
        problems.append(f"[objective] {objective.sense}: unknown model '{objective.model}'")

    for index, constraint in enumerate(spec.constraints):
        where = f"[[constraints]] #{index + 1}"
        if constraint.model not in spec.models:
            problems.append(f"{where} model: unknown model '{constraint.model}'")
        if constraint.max is None and constraint.min is None:
            problems.append(f"{where}: give max and/or min")
        both = isinstance(constraint.max, float) and isinstance(constraint.min, float)
        if both and constraint.min >= constraint.max:
            problems.append(f"{where}: min {constraint.min} is not below max {constraint.max}")

    production = spec.production
    if production is not None:
        if bool(production.model) == bool(production.expression):
            problems.append("[production]: give exactly one of model or expression")
        elif production.model and production.model not in spec.models:
            problems.append(f"[production] model: unknown model '{production.model}'")
        elif production.expression:
            try:
                compile_derived("production", production.expression, tags)
            except ExpressionError as error:
                problems.extend(f"[production] expression: {problem}" for problem in error.problems)

    for tag in spec.steady_state.tags:
        if tag not in tags:
            problems.append(f"[steady_state] tags: unknown tag '{tag}'")
    for model in spec.quality.models:
        if model not in spec.models:
            problems.append(f"[quality.models.{model}]: unknown model '{model}'")
    for model in spec.promotion.models:
        if model not in spec.models:
            problems.append(f"[promotion] models: unknown model '{model}'")
    if not spec.setpoints:
        problems.append("[tags]: the plant has no setpoint (nothing to recommend)")
    return problems


def _duplicate_table_problems(text: str) -> list[str]:
    """tomllib stops at the first duplicate table; name it clearly."""
    seen: set[str] = set()
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            header = stripped.split("]")[0].strip("[ ")
            if header in seen:
                problems.append(f"line {number}: duplicate table [{header}] (duplicate name)")
            seen.add(header)
    return problems


def parse_plant(text: str, path: str = "<plant>") -> PlantSpec:
    """Parse and validate a plant spec from TOML text; raise `SpecError` listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems = _duplicate_table_problems(text) or [f"not valid TOML: {error}"]
        raise SpecError(path, problems) from None
    try:
        spec = PlantSpec.model_validate({**raw, "source_text": text, "source_path": path})
    except ValidationError as error:
        raise SpecError(path, _schema_problems(error)) from None
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError(path, problems)
    return spec


def load_plant(path: str | Path | None = None) -> PlantSpec:
    """Load a plant spec from a file, or the shipped default plant when `path` is None."""
    if path is None:
        text = resources.files("dragon.plants").joinpath(DEFAULT_PLANT).read_text()
        return parse_plant(text, f"<default plant {DEFAULT_PLANT}>")
    file = Path(path)
    if not file.is_file():
        raise SpecError(str(file), ["file not found (pass --plant PATH to a plant TOML)"])
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(str(file), [f"cannot read the file: {error}"]) from None
    return parse_plant(text, str(file))

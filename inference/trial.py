"""`dragon trial`: a registered version in closed loop on the plant's simulator, against its operators.

Three copies of the plant's simulator (dragon/simulator/protocol.py) start from one seed, so they meet
the same load plan, seasons, drifts, abnormal episodes and sensor noise; only their setpoints differ:

* advisor: every `every_hours` the version answers the measured state and its recent window (the last
  `max_window_hours` of recorded rows, so that the anchors follow moves that have not settled) through
  the endpoint's own code path (`inference.payloads.decode` → `Answerer.answer`); a `recommended`
  answer's moves are applied to the setpoints (within their bounds); `hold`, `blocked` or a refused
  state keep them;
* operator: the plant's own operators (the simulator's `operator`), no advisor;
* oracle: the true move-limited optimum (the simulator's `oracle`) at the same interval.

Scoring uses the simulator's truth of every sample (lags included): the true yield, production and
the time beyond each true limit; money from the spec's `[economics]` when it has prices.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel

from dragon.bundle import Bundle
from dragon.data import elapsed_hours, max_window_hours, window_positions
from dragon.errors import DragonError
from dragon.simulator.protocol import EPISODE, PlantSimulator, load_simulator
from dragon.spec import Economics, PlantSpec
from inference import payloads
from inference.answering import Answerer
from inference.schemas import RecordError

ARMS = ("advisor", "operator", "oracle")
MAX_DAYS = 366.0
MOVE_SHARE = 0.1  # a change smaller than this share of its max_move is not counted as a move
WARM_UP_HOURS = 24.0  # the operators run all arms alike before the trial starts (not scored)
REVERSAL_HOURS = 12.0  # a move against the same setpoint's previous move within this time reverses it


class TrialSettings(BaseModel):
    days: float
    every_hours: float
    seed: int


@dataclass
class Decision:
    """One interval of the advisor arm: what it answered and what it applied."""

    hours: float
    status: str  # recommended | hold | blocked | error
    reason: str
    setpoints: dict[str, float] | None = None  # the full vector a recommendation applies


@dataclass
class ArmRun:
    """One arm's setpoints over time, its recorded rows and the truth of the same samples."""

    name: str
    simulator: PlantSimulator
    setpoints: dict[str, float]
    measured: list[pd.DataFrame] = field(default_factory=list)
    truth: list[pd.DataFrame] = field(default_factory=list)
    setpoint_log: list[dict[str, float]] = field(default_factory=list)

    def advance(self, hours: float, now: float) -> pd.DataFrame:
        self.setpoint_log.append({"hours": now, **self.setpoints})
        samples = self.simulator.step(self.setpoints, hours)
        self.measured.append(samples.measured)
        self.truth.append(samples.truth)
        return samples.measured


@dataclass
class TrialRun:
    spec: PlantSpec
    settings: TrialSettings
    model_version: str
    arms: dict[str, ArmRun]
    decisions: list[Decision]

    def frame(self, arm: str, kind: str = "truth") -> pd.DataFrame:
        parts = getattr(self.arms[arm], kind)
        return pd.concat(parts, ignore_index=True)


def check_settings(
    days: float, every_hours: float, seed: int, simulator: type[PlantSimulator]
) -> TrialSettings:
    """One line naming the flag for a trial that cannot run."""
    if not 0.0 < days <= MAX_DAYS:
        raise DragonError(f"--days {days:g}: give a trial length above 0 and at most {MAX_DAYS:g} days")
    sample_hours = simulator.sample_minutes / 60.0
    if not sample_hours <= every_hours <= days * 24.0:
        raise DragonError(
            f"--every {every_hours:g}: give an interval between one sample ({sample_hours * 60:g} min) "
            f"and the trial's length ({days * 24:g} h)"
        )
    return TrialSettings(days=days, every_hours=every_hours, seed=seed)


def run_trial(
    spec: PlantSpec,
    bundle: Bundle,
    model_version: str,
    settings: TrialSettings,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> TrialRun:
    """Run the three arms side by side; `progress(done, total)` after each interval."""
    simulator = load_simulator(spec)
    answerer = Answerer.load(bundle, model_version)
    days = settings.days + WARM_UP_HOURS / 24.0
    plants = {name: simulator(spec, days=days, seed=settings.seed) for name in ARMS}
    # Warm-up: the operators run the plant (one copy: the arms are identical until the trial starts),
    # so the trial starts from their usual operation, not from the simulator's initial state.
    recent, elapsed = pd.DataFrame(), 0.0
    while elapsed < WARM_UP_HOURS:
        hours = min(settings.every_hours, WARM_UP_HOURS - elapsed)
        setpoints = plants["operator"].operator(recent)
        recent = plants["operator"].step(setpoints, hours).measured
        for name in ("advisor", "oracle"):
            plants[name].step(setpoints, hours)
        elapsed += hours
    start = plants["operator"].operator(recent)
    arms = {name: ArmRun(name, plant, dict(start)) for name, plant in plants.items()}
    intervals = int(np.ceil(settings.days * 24.0 / settings.every_hours - 1e-9))
    decisions: list[Decision] = []
    elapsed = 0.0
    for interval in range(intervals):
        hours = min(settings.every_hours, settings.days * 24.0 - elapsed)
        recorded = {name: arm.advance(hours, elapsed) for name, arm in arms.items()}
        elapsed += hours
        if interval < intervals - 1:
            operator, oracle, advisor = arms["operator"], arms["oracle"], arms["advisor"]
            operator.setpoints = operator.simulator.operator(recorded["operator"])
            oracle.setpoints = oracle.simulator.oracle(oracle.setpoints)
            decision = _advise(answerer, spec, advisor.measured, elapsed, advisor.setpoints)
            decisions.append(decision)
            if decision.setpoints is not None:
                advisor.setpoints = decision.setpoints
        progress(interval + 1, intervals)
    return TrialRun(spec, settings, model_version, arms, decisions)


def _advise(
    answerer: Answerer,
    spec: PlantSpec,
    measured: list[pd.DataFrame],
    hours: float,
    setpoints: dict[str, float],
) -> Decision:
    """Ask the version as the endpoint is asked: a JSON body (the state and its recent window) decoded
    and answered by the same code. A recommendation is applied as its moves, each setpoint changed by
    its recommended value less its reading (as an operator enters "raise by 0.3"), within the setpoint's
    bounds as a control system's setpoint limits keep it: absolute values would write each reading's
    noise, or a faulty reading, into the setpoints."""
    state, recent = historian_request(spec, measured)
    body = json.dumps({"state": state, "recent": recent}).encode()
    answer = answerer.answer(payloads.decode(body, payloads.JSON, spec).records)[0]
    if isinstance(answer, RecordError):
        return Decision(hours, "error", "; ".join(answer.errors))
    applied = None
    if answer.status == "recommended":
        applied = {
            tag: float(np.clip(setpoints[tag] + answer.moves[tag], *spec.tags[tag].bounds))
            for tag in spec.setpoints
        }
    return Decision(hours, answer.status, answer.reason, applied)


def historian_request(spec: PlantSpec, measured: list[pd.DataFrame]) -> tuple[dict, list[dict]]:
    """The newest recorded row as the state and the rows of the last `max_window_hours` before it as its
    recent window (thinned as dragon.data.window_positions does), as a plant's historian client would
    send them."""
    reach_hours = max_window_hours(spec)
    column = spec.time_column
    frames, span = [], pd.Timedelta(0)
    for frame in reversed(measured):  # only as many intervals as the window reaches back
        frames.insert(0, frame)
        span = frames[-1][column].iloc[-1] - frames[0][column].iloc[0]
        if span >= pd.Timedelta(hours=reach_hours):
            break
    rows = pd.concat(frames, ignore_index=True)
    hours = elapsed_hours(rows[column])
    rows = rows.iloc[[*window_positions(hours, len(rows) - 1, reach_hours), len(rows) - 1]]
    tags = [tag for tag in spec.tags if tag in rows]
    table = rows[tags].astype(float).assign(**{column: rows[column].map(pd.Timestamp.isoformat)})
    records = table[[column, *tags]].to_dict("records")
    return records[-1], records[:-1]


# --- scoring ------------------------------------------------------------------------------
class ArmFigures(BaseModel):
    """One arm over the whole trial, from the simulator's truth."""

    objective_mean: float  # the true objective (a yield, %), mean over every sample
    production_mean: float  # t/h
    violation_minutes: dict[str, float]  # minutes beyond each true limit
    money_per_hour: float | None  # product value less feed cost, currency per hour


class TrialSummary(BaseModel):
    """The trial's figures (`dragon trial --json`): the advisor against the operators and the oracle."""

    plant: str
    model_version: str
    days: float
    every_hours: float
    seed: int
    objective: str
    production: str
    yield_gain_pct: float  # advisor - operator, percentage points of the true objective
    oracle_gain_pct: float  # oracle - operator
    captured_share: float | None  # yield_gain_pct / oracle_gain_pct (None when the oracle gains nothing)
    yield_gain_t_per_year: float  # product the yield gain is worth at the operators' feed, t/year
    production_change_pct: float  # advisor vs operator, % of the operators' production
    violation_minutes: float  # advisor arm, minutes beyond any true limit
    violation_minutes_caused: float  # ... of which the operators' arm was within its limits
    operator_violation_minutes: float
    money_per_year: float | None  # advisor - operator, currency per year (None: no prices) = the two below
    money_yield_per_year: float | None  # feed saved by the yield gain at the operators' production
    money_production_per_year: float | None  # margin of the production change at the advisor's yield
    currency: str | None
    money_note: str
    hours_per_year: float
    decisions: int
    moves: int
    move_reversals: int
    statuses: dict[str, int]
    blocked_share: float  # blocked (or refused) answers / decisions
    blocked_streak_max: int  # longest run of consecutive blocked answers
    blocked_streak_hours: float
    reasons: dict[str, int]  # hold and blocked reasons, numbers masked, with their counts
    arms: dict[str, ArmFigures]
    report: str | None = None


def _beyond(values: pd.Series, limits: tuple[float | None, float | None]) -> np.ndarray:
    low, high = limits
    beyond = np.zeros(len(values), dtype=bool)
    if low is not None:
        beyond |= values.to_numpy() < low
    if high is not None:
        beyond |= values.to_numpy() > high
    return beyond


def _money_per_hour(truth: pd.DataFrame, objective: str, production: str, economics: Economics | None):
    """Product value less the feed it consumes, per sample (currency/h): feed = production x
    feed_per_product / yield."""
    if economics is None:
        return None
    product = truth[production].to_numpy()
    feed = product * economics.feed_per_product / (truth[objective].to_numpy() / 100.0)
    return economics.product_price * product - economics.feed_price * feed


def _money_parts(
    advisor: pd.DataFrame, operator: pd.DataFrame, objective: str, production: str, e: Economics
):
    """(yield part, production part) of the advisor's money over the operators, currency/h. They sum to the
    difference of `_money_per_hour`: feed saved at the operators' production, then the extra tonnes'
    margin at the advisor's yield."""
    p_op, p_ad = operator[production].to_numpy(), advisor[production].to_numpy()
    y_op, y_ad = operator[objective].to_numpy() / 100.0, advisor[objective].to_numpy() / 100.0
    saved = e.feed_price * e.feed_per_product * p_op * (1.0 / y_op - 1.0 / y_ad)
    margin = (p_ad - p_op) * (e.product_price - e.feed_price * e.feed_per_product / y_ad)
    return float(saved.mean()), float(margin.mean())


def _reversals(decisions: list[Decision], spec: PlantSpec, start: dict[str, float]) -> tuple[int, int]:
    """(moves, reversals): applied changes of at least MOVE_SHARE x max_move, and those against the
    same setpoint's previous move within REVERSAL_HOURS."""
    moves = reversals = 0
    current = dict(start)
    last: dict[str, tuple[float, float]] = {}  # tag -> (hours, sign) of its previous move
    for decision in decisions:
        if decision.setpoints is None:
            continue
        moved = False
        for tag in spec.setpoints:
            change = decision.setpoints[tag] - current[tag]
            if abs(change) < MOVE_SHARE * spec.tags[tag].max_move:
                continue
            moved = True
            sign = float(np.sign(change))
            if tag in last and last[tag][1] != sign and decision.hours - last[tag][0] < REVERSAL_HOURS:
                reversals += 1
            last[tag] = (decision.hours, sign)
        moves += moved
        current = dict(decision.setpoints)
    return moves, reversals


def _longest_blocked(decisions: list[Decision]) -> int:
    longest = run = 0
    for decision in decisions:
        run = run + 1 if decision.status in ("blocked", "error") else 0
        longest = max(longest, run)
    return longest


def _reason_key(decision: Decision) -> str:
    return (
        f"{decision.status}: " + re.sub(r"(?<![\w.])[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", decision.reason)[:120]
    )


def score_trial(run: TrialRun) -> TrialSummary:
    spec, scoring = run.spec, run.arms["operator"].simulator.scoring
    economics = spec.economics
    hours_per_year = (
        economics.hours_per_year if economics else Economics.model_fields["hours_per_year"].default
    )
    minutes = run.arms["operator"].simulator.sample_minutes
    truths = {name: run.frame(name) for name in ARMS}
    objective, production = scoring.objective, scoring.production
    arms = {}
    beyond = {}
    for name, truth in truths.items():
        flags = {tag: _beyond(truth[tag], limits) for tag, limits in scoring.limits.items()}
        beyond[name] = np.logical_or.reduce(list(flags.values())) if flags else np.zeros(len(truth), bool)
        money = _money_per_hour(truth, objective, production, economics)
        arms[name] = ArmFigures(
            objective_mean=float(truth[objective].mean()),
            production_mean=float(truth[production].mean()),
            violation_minutes={tag: float(flag.sum() * minutes) for tag, flag in flags.items()},
            money_per_hour=None if money is None else float(money.mean()),
        )
    operator, advisor = truths["operator"], truths["advisor"]
    gain = arms["advisor"].objective_mean - arms["operator"].objective_mean
    oracle_gain = arms["oracle"].objective_mean - arms["operator"].objective_mean
    worth = (operator[production] / operator[objective] * (advisor[objective] - operator[objective])).mean()
    statuses = Counter(d.status for d in run.decisions)
    moves, reversals = _reversals(run.decisions, spec, run.arms["advisor"].setpoint_log[0])
    streak = _longest_blocked(run.decisions)
    if economics is None:
        money = money_yield = money_production = currency = None
        note = "no [economics] prices in the plant spec: tonnes only, no money"
    else:
        money = (arms["advisor"].money_per_hour - arms["operator"].money_per_hour) * hours_per_year
        saved, margin = _money_parts(advisor, operator, objective, production, economics)
        money_yield, money_production = saved * hours_per_year, margin * hours_per_year
        currency = economics.currency
        note = f"prices: {economics.source or 'the plant spec'}"
    return TrialSummary(
        plant=spec.name,
        model_version=run.model_version,
        days=run.settings.days,
        every_hours=run.settings.every_hours,
        seed=run.settings.seed,
        objective=objective,
        production=production,
        yield_gain_pct=gain,
        oracle_gain_pct=oracle_gain,
        captured_share=gain / oracle_gain if oracle_gain > 1e-9 else None,
        yield_gain_t_per_year=float(worth * hours_per_year),
        production_change_pct=100.0
        * (arms["advisor"].production_mean / arms["operator"].production_mean - 1.0),
        violation_minutes=float(beyond["advisor"].sum() * minutes),
        violation_minutes_caused=float((beyond["advisor"] & ~beyond["operator"]).sum() * minutes),
        operator_violation_minutes=float(beyond["operator"].sum() * minutes),
        money_per_year=money,
        money_yield_per_year=money_yield,
        money_production_per_year=money_production,
        currency=currency,
        money_note=note,
        hours_per_year=hours_per_year,
        decisions=len(run.decisions),
        moves=moves,
        move_reversals=reversals,
        statuses=dict(statuses),
        blocked_share=(statuses["blocked"] + statuses["error"]) / max(len(run.decisions), 1),
        blocked_streak_max=streak,
        blocked_streak_hours=streak * run.settings.every_hours,
        reasons=dict(
            Counter(_reason_key(d) for d in run.decisions if d.status != "recommended").most_common()
        ),
        arms=arms,
    )


def episodes_of(run: TrialRun) -> pd.DataFrame:
    """The abnormal episodes the plant went through: label, start and end (hours)."""
    measured = run.frame("operator", "measured")
    hours = np.arange(len(measured)) * run.arms["operator"].simulator.sample_minutes / 60.0
    label = measured[EPISODE].to_numpy()
    starts = np.flatnonzero((label != "") & np.concatenate([[True], label[1:] != label[:-1]]))
    rows = []
    for start in starts:
        end = start
        while end + 1 < len(label) and label[end + 1] == label[start]:
            end += 1
        rows.append({"episode": label[start], "start_hours": hours[start], "end_hours": hours[end]})
    return pd.DataFrame(rows, columns=["episode", "start_hours", "end_hours"])

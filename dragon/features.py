"""Derived features: arithmetic on tags, declared in the plant spec as `[derived.<name>] expression`.

A detector may read a derived feature next to raw tags, e.g. the steam approach
`evaporator_steam_temperature - evaporator_temperature`: a fouled evaporator shifts that
relationship while every single tag stays in its normal range.

Expressions come from a file a user edits, so they are never handed to `eval` as text: they are
parsed with `ast` and every node is checked against a whitelist (numbers, tag names, + - * / **,
unary minus/plus and the functions of `FUNCTIONS`); anything else (attribute access, subscripts,
calls to other functions, keywords, strings, comparisons, lambdas...) is a problem reported against
`[derived.<name>] expression`. Only a tree that passed the check is compiled, once, and then
evaluated with empty builtins:

* on columns (a DataFrame or {tag: array}) with numpy, vectorised;
* on one state ({tag: float}) with `math`, in about a microsecond, for the optimizer, which
  evaluates every state and candidate it scores.

An undefined value (log of a negative number, division by zero, overflow) is NaN in both paths; a
detector flags a row whose feature is NaN (it cannot vouch for it).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import CodeType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Function names an expression may call, each with its positional argument count.
FUNCTIONS = {"log": 1, "log10": 1, "exp": 1, "sqrt": 1, "abs": 1, "min": 2, "max": 2}
_FUNCTION_PREFIX = "_derived_fn_"  # functions live under names no tag can shadow
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY = (ast.USub, ast.UAdd)
_UNDEFINED = (ZeroDivisionError, ValueError, OverflowError)


def _scalar_log(x: float) -> float:
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _scalar_log10(x: float) -> float:
    return math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _scalar_sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan


_SCALAR_FUNCTIONS: dict[str, Callable[..., float]] = {
    "log": _scalar_log,
    "log10": _scalar_log10,
    "exp": math.exp,
    "sqrt": _scalar_sqrt,
    "abs": abs,
    "min": min,
    "max": max,
}


@cache
def _vector_globals() -> dict[str, Any]:
    import numpy as np  # lazily: the spec (and CLI start-up) import this module without numpy

    table = {
        "log": np.log,
        "log10": np.log10,
        "exp": np.exp,
        "sqrt": np.sqrt,
        "abs": np.abs,
        "min": np.minimum,
        "max": np.maximum,
    }
    return {"__builtins__": {}, **{_FUNCTION_PREFIX + name: f for name, f in table.items()}}


_SCALAR_GLOBALS = {"__builtins__": {}, **{_FUNCTION_PREFIX + n: f for n, f in _SCALAR_FUNCTIONS.items()}}


class ExpressionError(ValueError):
    """An expression that is not allowed; `problems` names each offending part."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _check_tree(tree: ast.Expression, known_tags: Iterable[str]) -> tuple[list[str], list[str]]:
    """(tags read in order of appearance, problems) of a parsed expression."""
    known = set(known_tags)
    tags: list[str] = []
    problems: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            visit(node.body)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                problems.append(f"constant {node.value!r} is not a number")
        elif isinstance(node, ast.Name):
            if node.id not in known:
                problems.append(f"unknown tag '{node.id}'")
            elif node.id not in tags:
                tags.append(node.id)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _OPERATORS):
                problems.append(f"operator {type(node.op).__name__} is not allowed (use + - * / **)")
            visit(node.left)
            visit(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, _UNARY):
                problems.append(f"unary operator {type(node.op).__name__} is not allowed")
            visit(node.operand)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS:
                shown = name or ast.unparse(node.func)
                problems.append(f"call to '{shown}' is not allowed (functions: {', '.join(FUNCTIONS)})")
                return
            if node.keywords or len(node.args) != FUNCTIONS[name]:
                problems.append(f"{name}() takes {FUNCTIONS[name]} positional argument(s)")
            for argument in node.args:
                visit(argument)
        else:
            problems.append(f"'{ast.unparse(node)}' ({type(node).__name__}) is not allowed")

    visit(tree)
    return tags, problems


class _RenameFunctions(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        node.func = ast.Name(id=_FUNCTION_PREFIX + node.func.id, ctx=ast.Load())
        return node


@dataclass(frozen=True)
class DerivedFeature:
    """A checked, compiled expression over tags (build it with `compile_derived`)."""

    name: str
    expression: str
    inputs: tuple[str, ...]  # the tags it reads
    _code: CodeType

    def evaluate_state(self, state: Mapping[str, float]) -> float:
        """The value for one state {tag: float}; NaN where the expression is undefined."""
        try:
            return float(eval(self._code, _SCALAR_GLOBALS, {t: float(state[t]) for t in self.inputs}))  # noqa: S307 - whitelisted tree
        except _UNDEFINED:
            return math.nan

    def evaluate_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The values for columns ({tag: array} or a DataFrame), vectorised; NaN where undefined."""
        import numpy as np

        values = {t: np.asarray(columns[t], dtype=float) for t in self.inputs}
        with np.errstate(all="ignore"):
            result = eval(self._code, _vector_globals(), values)  # noqa: S307 - whitelisted tree
        shape = np.broadcast_shapes(*(v.shape for v in values.values())) if values else ()
        return np.broadcast_to(np.asarray(result, dtype=float), shape).copy()


def compile_derived(name: str, expression: str, known_tags: Iterable[str]) -> DerivedFeature:
    """Check and compile `expression`; raise ExpressionError listing every problem."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError([f"not a valid expression ({error.msg})"]) from None
    tags, problems = _check_tree(tree, known_tags)
    if problems:
        raise ExpressionError(problems)
    code = compile(ast.fix_missing_locations(_RenameFunctions().visit(tree)), f"<derived {name}>", "eval")
    return DerivedFeature(name, expression, tuple(tags), code)


Frame = TypeVar("Frame")


def add_derived(
    data: Frame, derived: Mapping[str, DerivedFeature], names: Iterable[str] | None = None
) -> Frame:
    """`data` with the `derived` features (a spec's `derived_features`; or only `names`) added, as the
    same type. A DataFrame gets new columns (a copy); a mapping gets a new dict: {tag: float} is
    evaluated as one state, {tag: array} column-wise. A missing input tag raises DataError naming the
    feature. (It takes the compiled features, not the spec, so that the spec may import this module.)
    """
    import pandas as pd

    from dragon.errors import DataError

    wanted = [derived[n] for n in (derived if names is None else names)]
    for feature in wanted:
        missing = [t for t in feature.inputs if t not in data]
        if missing:
            raise DataError(
                f"derived feature '{feature.name}' needs tag(s) {', '.join(missing)}, which the data lacks"
            )
    if isinstance(data, pd.DataFrame):
        return data.assign(**{f.name: f.evaluate_columns(data) for f in wanted})
    if _is_state(data):
        return {**data, **{f.name: f.evaluate_state(data) for f in wanted}}
    return {**data, **{f.name: f.evaluate_columns(data) for f in wanted}}


def _is_state(data: Mapping[str, Any]) -> bool:
    """True for {tag: scalar}: one plant state."""
    first = next(iter(data.values()), 0.0)
    return isinstance(first, int | float) or getattr(first, "ndim", 1) == 0


def feature_table(
    data: pd.DataFrame | Mapping[str, Any], features: list[str], derived: Mapping[str, DerivedFeature]
) -> np.ndarray:
    """The (n, len(features)) float matrix of `features` (tags or derived names) for rows or one state.

    Tags are read as they are; derived features are evaluated from their input tags. A missing
    tag raises DataError naming it.
    """
    import numpy as np
    import pandas as pd

    from dragon.errors import DataError

    needed = {t for f in features for t in (derived[f].inputs if f in derived else (f,))}
    missing = sorted(t for t in needed if t not in data)
    if missing:
        raise DataError(f"no value for tag(s) {', '.join(missing)} (the detectors read them)")
    if not isinstance(data, pd.DataFrame) and _is_state(data):
        row = [derived[f].evaluate_state(data) if f in derived else float(data[f]) for f in features]
        return np.array([row], dtype=float)
    columns = [
        derived[f].evaluate_columns(data) if f in derived else np.asarray(data[f], dtype=float)
        for f in features
    ]
    return np.column_stack([np.atleast_1d(c) for c in columns])

"""User-facing errors: what went wrong and what to do, never a traceback.

Every error a user can cause (a bad file, a bad spec, a bad state, an unknown
version) is a `DragonError`. The CLI prints its message and exits with its code;
the server turns it into a 4xx JSON body.
"""

from __future__ import annotations


class DragonError(Exception):
    """An error the user can fix. `exit_code` 2 = bad input, 1 = operation failed."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class SpecError(DragonError):
    """A plant spec with one or more mistakes; `problems` lists every one of them."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the plant spec:\n{lines}")


class DataError(DragonError):
    """A history or state that cannot be used (names the file, row and tag)."""


class BundleError(DragonError):
    """A model bundle that is missing, incomplete or fails hash verification."""


class RegistryError(DragonError):
    """An unknown model version, alias or registry state that forbids the operation."""

"""Where a model came from: git commit and dirty flag, whole-file data hash, lock hash.

MLflow sets `mlflow.source.git.commit` only when the entry script sits in the repo
and hashes only the first rows of a dataset (FACTS.md), so we compute all of it here.
In the container there is no git: the image records the commit as DRAGON_GIT_COMMIT.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = "requirements.lock"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass(frozen=True)
class Provenance:
    git_commit: str
    git_dirty: bool
    git_repository: str
    data_sha256: str
    lock_sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def _lock_sha256() -> str:
    for candidate in (
        os.environ.get("DRAGON_LOCK_FILE"),
        REPO_ROOT / LOCK_FILE,
        Path("/opt/dragon") / LOCK_FILE,
    ):
        if candidate and Path(candidate).is_file():
            return file_sha256(candidate)
    return "unknown"


def files_sha256(data_files: list[Path]) -> str:
    """The data's hash: one file's sha256, or the sha256 of its files' sha256 in path order."""
    if len(data_files) == 1:
        return file_sha256(data_files[0])
    digest = hashlib.sha256()
    for path in sorted(data_files):
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def collect_provenance(data_files: list[Path]) -> Provenance:
    """Provenance of a training on `data_files` (hashed whole, in order)."""
    commit = os.environ.get("DRAGON_GIT_COMMIT") or _git("rev-parse", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status) if status is not None else os.environ.get("DRAGON_GIT_DIRTY", "false") == "true"
    repository = os.environ.get("DRAGON_GIT_REPOSITORY") or _git("config", "--get", "remote.origin.url") or ""
    return Provenance(commit, dirty, repository, files_sha256(data_files), _lock_sha256())

"""What a server worker needs to know, passed from the launcher to every worker as environment.

uvicorn starts each worker as a fresh process that imports the app by name, so the
resolved bundle path, model version and capture folder travel as `DRAGON_SERVE_*`
variables (SageMaker's own `SAGEMAKER_*` variables are read where SageMaker sets them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dragon.errors import DragonError

BUNDLE_ENV = "DRAGON_SERVE_BUNDLE"
VERSION_ENV = "DRAGON_MODEL_VERSION"  # also set by the deployment workflow on SageMaker
CAPTURE_ENV = "DRAGON_CAPTURE_DIR"  # a folder, or "off"
CAPTURE_MAX_BYTES_ENV = "DRAGON_CAPTURE_MAX_BYTES"
PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 100  # SageMaker's ceiling for batch transform
CAPTURE_OFF = "off"


def int_env(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DragonError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise DragonError(f"{name}={value} is outside [{low}, {high}]")
    return value


def default_workers() -> int:
    return int_env(WORKERS_ENV, os.cpu_count() or 1, 1, 256)


def default_port() -> int:
    return int_env(PORT_ENV, 8080, 1, 65535)


def payload_mb() -> int:
    return int_env(PAYLOAD_ENV, DEFAULT_PAYLOAD_MB, 1, MAX_PAYLOAD_MB)


def capture_max_bytes() -> int:
    from inference.capture import DEFAULT_MAX_BYTES

    return int_env(CAPTURE_MAX_BYTES_ENV, DEFAULT_MAX_BYTES, 1024, 1 << 40)


@dataclass(frozen=True)
class ServeConfig:
    bundle: Path
    model_version: str | None  # None: the bundle's manifest fingerprint names it
    capture_dir: Path | None
    capture_max_bytes: int
    max_payload_mb: int
    workers: int

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024

    def to_env(self) -> dict[str, str]:
        env = {
            BUNDLE_ENV: str(self.bundle),
            CAPTURE_ENV: str(self.capture_dir) if self.capture_dir else CAPTURE_OFF,
            CAPTURE_MAX_BYTES_ENV: str(self.capture_max_bytes),
            PAYLOAD_ENV: str(self.max_payload_mb),
            WORKERS_ENV: str(self.workers),
        }
        if self.model_version:
            env[VERSION_ENV] = self.model_version
        return env

    @classmethod
    def from_env(cls) -> ServeConfig:
        bundle = os.environ.get(BUNDLE_ENV)
        if not bundle:
            raise DragonError(f"{BUNDLE_ENV} is not set: start the server with `serve` or `dragon serve`")
        capture = os.environ.get(CAPTURE_ENV, CAPTURE_OFF).strip()
        return cls(
            bundle=Path(bundle),
            model_version=os.environ.get(VERSION_ENV) or None,
            capture_dir=None if capture in ("", CAPTURE_OFF) else Path(capture),
            capture_max_bytes=capture_max_bytes(),
            max_payload_mb=payload_mb(),
            workers=default_workers(),
        )

"""Starting the endpoint: resolve the bundle, check it once, then run uvicorn workers.

The bundle is loaded and checked in the launcher first, so a bundle that fails
verification stops the server with one log line and exit code 2 (uvicorn would
otherwise restart the failing workers). Each worker then loads it again in its
own lifespan before it answers /ping.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from dragon.errors import DragonError
from inference.config import CAPTURE_ENV, CAPTURE_OFF, VERSION_ENV, ServeConfig, capture_max_bytes, payload_mb

log = logging.getLogger("dragon.serve")

# Each worker does its numerics on one thread: workers, not BLAS threads, use the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
CONTAINER_MODEL_DIR = "/opt/ml/model"


def one_thread_per_worker() -> None:
    """Call before numpy is imported (workers inherit the environment)."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def capture_dir(*, local: bool) -> Path | None:
    """DRAGON_CAPTURE_DIR (a folder or "off"); else DRAGON_HOME's capture folder locally or when
    DRAGON_HOME is set; else off (a container without capture configured)."""
    raw = os.environ.get(CAPTURE_ENV)
    if raw is not None:
        return None if raw.strip() in ("", CAPTURE_OFF) else Path(raw).resolve()
    if local or os.environ.get("DRAGON_HOME"):
        from dragon.settings import load_settings

        return load_settings().capture_dir
    return None


def container_bundle() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR") or CONTAINER_MODEL_DIR)


def build_config(
    bundle: Path, *, model_version: str | None, workers: int, capture: Path | None
) -> ServeConfig:
    if workers < 1:
        raise DragonError(f"--workers must be at least 1, got {workers}")
    return ServeConfig(
        bundle=bundle.resolve(),
        model_version=model_version or os.environ.get(VERSION_ENV) or None,
        capture_dir=capture,
        capture_max_bytes=capture_max_bytes(),
        max_payload_mb=payload_mb(),
        workers=workers,
    )


def run_server(config: ServeConfig, *, host: str, port: int) -> None:
    """Serve until stopped. A bundle that does not verify: one log line, exit code 2."""
    import uvicorn

    from inference.app import create_app, load_answerer
    from inference.http_protocol import NoDelayH11Protocol

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    one_thread_per_worker()
    try:
        answerer = load_answerer(config)
    except DragonError as error:
        log.error("serve: cannot start, %s", " ".join(error.message.split()))
        sys.exit(2)
    os.environ.update(config.to_env())
    log.info("serving %s on http://%s:%d with %d worker(s)", config.bundle, host, port, config.workers)
    # One worker serves in this process, with the bundle loaded above; more workers are fresh
    # processes that import the app by name and load the bundle themselves.
    single = config.workers == 1
    target = create_app(config, answerer) if single else "inference.app:create_app"
    del answerer  # several workers: the launcher only checked the bundle, it does not serve
    uvicorn.run(
        target,
        factory=not single,
        host=host,
        port=port,
        workers=config.workers,
        access_log=False,
        http=NoDelayH11Protocol,
        log_level="info",
        timeout_graceful_shutdown=10,
    )

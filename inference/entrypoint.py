"""The container's `serve` entry point: SageMaker runs `docker run IMAGE serve` with no arguments.

Defaults follow SageMaker: the bundle in SM_MODEL_DIR or /opt/ml/model, port
SAGEMAKER_BIND_TO_PORT or 8080 on all interfaces, SAGEMAKER_MODEL_SERVER_WORKERS
workers (default: one per core). The flags exist for local runs and tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dragon.errors import DragonError
from inference.server import one_thread_per_worker


def main(argv: list[str] | None = None) -> None:
    one_thread_per_worker()
    from inference.config import default_port, default_workers
    from inference.server import build_config, capture_dir, container_bundle, run_server

    parser = argparse.ArgumentParser(prog="serve", description="YET Dragon SageMaker-compatible endpoint.")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory or model.tar.gz")
    parser.add_argument("--port", type=int, default=None, help="default: SAGEMAKER_BIND_TO_PORT or 8080")
    parser.add_argument("--host", default="0.0.0.0", help="default: all interfaces (container)")
    parser.add_argument(
        "--workers", type=int, default=None, help="default: SAGEMAKER_MODEL_SERVER_WORKERS or cores"
    )
    parser.add_argument(
        "--model-version", default=None, help="default: DRAGON_MODEL_VERSION or the bundle hash"
    )
    args = parser.parse_args(argv)
    try:
        config = build_config(
            args.bundle or container_bundle(),
            model_version=args.model_version,
            workers=args.workers or default_workers(),
            capture=capture_dir(local=False),
        )
        port = args.port or default_port()
    except DragonError as error:  # a bad environment variable: one line, no traceback
        parser.exit(2, f"serve: {error.message}\n")
    run_server(config, host=args.host, port=port)


if __name__ == "__main__":
    main()

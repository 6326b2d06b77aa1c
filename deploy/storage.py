"""Fetch what a step needs from a URI: a local path, file://, or s3:// (boto3)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from dragon.errors import DataError


def fetch(uri: str, scratch: Path, *, s3_client=None) -> Path:
    """A local path for `uri`, downloading s3:// objects into `scratch`."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else uri)
        if not path.exists():
            raise DataError(f"{uri}: not found")
        return path
    if parsed.scheme == "s3":
        import boto3

        client = s3_client or boto3.client("s3")
        target = scratch / Path(parsed.path).name
        scratch.mkdir(parents=True, exist_ok=True)
        client.download_file(parsed.netloc, parsed.path.lstrip("/"), str(target))
        return target
    raise DataError(f"{uri}: unsupported URI scheme '{parsed.scheme}' (use a path, file:// or s3://)")


def unpack_bundle(path: Path, scratch: Path) -> Path:
    """A bundle directory from a directory or a SageMaker model.tar.gz."""
    if path.is_dir():
        return path
    target = scratch / "bundle"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target

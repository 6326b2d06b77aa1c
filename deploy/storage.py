"""Fetch what a step needs from a URI: a local path, file://, or s3:// (boto3); a history may also be an
S3 prefix (data-lake partitions: every .csv / .parquet object under it, as the training job's channel
reads it)."""

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


HISTORY_SUFFIXES = (".csv", ".parquet")


def read_history_uri(uri: str, spec, scratch: Path, *, s3_client=None):
    """A history from a file, an S3 object or an S3 prefix ending in '/' (its .csv / .parquet objects in key
    order, concatenated; the training job reads the same objects from its channel)."""
    import pandas as pd

    from dragon.data import read_history

    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not uri.endswith("/"):
        return read_history(fetch(uri, scratch, s3_client=s3_client), spec)
    import boto3

    client = s3_client or boto3.client("s3")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/")
    )
    keys = sorted(
        item["Key"]
        for page in pages
        for item in page.get("Contents", [])
        if item["Key"].endswith(HISTORY_SUFFIXES) and ".truth." not in item["Key"]
    )
    if not keys:
        raise DataError(f"{uri}: no .csv or .parquet object under this prefix")
    frames = []
    for number, key in enumerate(keys):
        target = scratch / f"{number:05d}-{Path(key).name}"
        scratch.mkdir(parents=True, exist_ok=True)
        client.download_file(parsed.netloc, key, str(target))
        frames.append(read_history(target, spec))
    return pd.concat(frames, ignore_index=True)


def fetch_bundle(uri: str, scratch: Path) -> Path:
    """A bundle directory from where a version keeps it: a folder or model.tar.gz here, a model.tar.gz in
    S3 (a training job's output) or an S3 prefix (the registry's copy of the bundle's files)."""
    if urlparse(uri).scheme == "s3" and not uri.endswith(".tar.gz"):
        from mlflow.artifacts import download_artifacts

        return Path(download_artifacts(artifact_uri=uri, dst_path=str(scratch)))
    return unpack_bundle(fetch(uri, scratch), scratch)


def unpack_bundle(path: Path, scratch: Path) -> Path:
    """A bundle directory from a directory or a SageMaker model.tar.gz."""
    if path.is_dir():
        return path
    target = scratch / "bundle"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target

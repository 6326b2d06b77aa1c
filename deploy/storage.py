"""Fetch what a step needs from a URI: a local path, file://, or s3:// (boto3); a history may also be an
S3 prefix (data-lake partitions: every .csv / .parquet object under it, as the training job's channel
reads it)."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from dragon.data import is_history_file
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


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size_bytes: int


def history_objects(uri: str, *, s3_client=None) -> list[StoredObject]:
    """The S3 objects a history URI names: the object itself, or every .csv / .parquet object under a prefix
    ending in '/' (data-lake partitions), in key order; the training job's channel reads the same objects."""
    import boto3
    from botocore.exceptions import ClientError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    client = s3_client or boto3.client("s3")
    if not uri.endswith("/"):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise DataError(f"{uri}: not found ({error.response['Error'].get('Code', error)})") from None
        return [StoredObject(bucket, key, int(head["ContentLength"]))]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    found = sorted(
        (item["Key"], int(item["Size"]))
        for page in pages
        for item in page.get("Contents", [])
        if is_history_file(item["Key"])
    )
    if not found:
        raise DataError(f"{uri}: no .csv or .parquet object under this prefix")
    return [StoredObject(bucket, name, size) for name, size in found]


def fetch_history(uri: str, scratch: Path, *, s3_client=None) -> list[Path]:
    """Local copies of a history's files (a path, file://, an S3 object or an S3 prefix), in key order."""
    if urlparse(uri).scheme != "s3":
        return [fetch(uri, scratch)]
    import boto3

    client = s3_client or boto3.client("s3")
    scratch.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, item in enumerate(history_objects(uri, s3_client=client)):
        target = scratch / f"{number:05d}-{Path(item.key).name}"
        client.download_file(item.bucket, item.key, str(target))
        paths.append(target)
    return paths


def read_history_files(paths: list[Path], spec):
    """One history from its files, concatenated in order."""
    import pandas as pd

    from dragon.data import read_history

    frames = [read_history(path, spec) for path in paths]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def read_history_uri(uri: str, spec, scratch: Path, *, s3_client=None):
    """A history from a file, an S3 object or an S3 prefix ending in '/'."""
    return read_history_files(fetch_history(uri, scratch, s3_client=s3_client), spec)


def put_bytes(body: bytes, uri: str, *, s3_client=None) -> str:
    """Write `body` to an s3:// URI (or a local path)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        path = Path(unquote(parsed.path) if parsed.scheme else uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return uri
    import boto3

    (s3_client or boto3.client("s3")).put_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=body)
    return uri


def put_file(path: Path, uri: str, *, s3_client=None) -> str:
    """Upload a file to an s3:// URI (multipart for a large one), or copy it to a local path."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        return put_bytes(path.read_bytes(), uri)
    import boto3

    (s3_client or boto3.client("s3")).upload_file(str(path), parsed.netloc, parsed.path.lstrip("/"))
    return uri


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

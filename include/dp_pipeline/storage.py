"""Reading and writing ``s3://`` objects, and the layout of a DAG run's prefix.

boto3 takes the endpoint and the credentials from the environment (``AWS_ENDPOINT_URL_S3``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), so only URIs pass between tasks.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._=-]+")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key."""
    if not uri.startswith("s3://"):
        raise ValueError(f"Expected an s3:// URI, found {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"The S3 URI {uri!r} has no bucket")
    return bucket, key


def join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *(part.strip("/") for part in parts)])


def run_prefix(bucket: str, dag_id: str, run_id: str) -> str:
    """Return the S3 prefix that belongs to one DAG run.

    The run id is made safe for object keys, and the mapping is deterministic so that a
    retried task or a cleared run writes over its own objects instead of new ones.
    """
    safe_run_id = _UNSAFE_KEY_CHARACTERS.sub("_", run_id).strip("_")
    return f"s3://{bucket}/runs/{dag_id}/{safe_run_id}"


@functools.cache
def client():
    import boto3
    from botocore.config import Config

    # Path-style addressing, because S3-compatible servers behind a plain host name or IP
    # address (MinIO, rclone) cannot serve bucket subdomains.
    addressing = "path" if os.environ.get("AWS_ENDPOINT_URL_S3") else "auto"
    retries = {"mode": "standard"}
    # Eight retries, unless AWS_MAX_ATTEMPTS (boto3's variable for the total attempts) is
    # set, because a max_attempts in Config would override it.
    if not os.environ.get("AWS_MAX_ATTEMPTS"):
        retries["max_attempts"] = 8
    config = Config(
        retries=retries,
        s3={"addressing_style": addressing},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.client("s3", config=config)


def put_bytes(uri: str, data: bytes) -> str:
    bucket, key = parse_s3_uri(uri)
    client().put_object(Bucket=bucket, Key=key, Body=data)
    logger.info("Wrote %d bytes to %s", len(data), uri)
    return uri


def get_bytes(uri: str) -> bytes:
    bucket, key = parse_s3_uri(uri)
    return client().get_object(Bucket=bucket, Key=key)["Body"].read()


def put_json(uri: str, document: Any) -> str:
    return put_bytes(uri, json.dumps(document, indent=2, sort_keys=True).encode())


def get_json(uri: str) -> Any:
    return json.loads(get_bytes(uri))


def upload_file(path: Path, uri: str) -> str:
    bucket, key = parse_s3_uri(uri)
    client().upload_file(str(path), bucket, key)
    logger.info("Uploaded %s to %s", path, uri)
    return uri


def download_file(uri: str, path: Path) -> Path:
    bucket, key = parse_s3_uri(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    client().download_file(bucket, key, str(path))
    return path

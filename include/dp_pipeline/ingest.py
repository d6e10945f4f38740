"""Ingest step: fetch the Adult files, check their digests and store them in the run's prefix."""

from __future__ import annotations

import hashlib
import io
import logging
import urllib.request
import zipfile
from pathlib import Path

from dp_pipeline import adult, storage
from dp_pipeline.errors import ChecksumMismatchError, SourceError

logger = logging.getLogger(__name__)

ADULT_FILES = (adult.TRAIN_FILE, adult.TEST_FILE)
DOWNLOAD_TIMEOUT_SECONDS = 120


def ingest(source: str, run_prefix: str, *, verify_checksums: bool = True) -> dict[str, str]:
    """Copy adult.data and adult.test from ``source`` to ``<run_prefix>/raw/``.

    ``source`` is an http(s) URL of a zip archive, a local folder or zip file, or an
    ``s3://`` prefix or zip object. Returns the files' S3 URIs under the keys ``train``
    and ``test`` and their digests under ``train_sha256`` and ``test_sha256``.
    """
    files = read_source(source)
    result: dict[str, str] = {}
    for role, file_name in (("train", adult.TRAIN_FILE), ("test", adult.TEST_FILE)):
        data = files[file_name]
        digest = check_digest(file_name, data, verify=verify_checksums)
        result[role] = storage.put_bytes(storage.join(run_prefix, "raw", file_name), data)
        result[f"{role}_sha256"] = digest
    return result


def check_digest(file_name: str, data: bytes, *, verify: bool) -> str:
    digest = hashlib.sha256(data).hexdigest()
    expected = adult.KNOWN_SHA256[file_name]
    if digest == expected:
        logger.info("%s: SHA-256 matches the published digest", file_name)
    elif verify:
        raise ChecksumMismatchError(file_name, expected, digest)
    else:
        logger.warning(
            "%s: SHA-256 %s differs from the published %s; accepted because checksum "
            "verification is off",
            file_name,
            digest,
            expected,
        )
    return digest


def read_source(source: str) -> dict[str, bytes]:
    """Return the bytes of adult.data and adult.test found at ``source``."""
    if not source:
        raise SourceError("The data source is empty; set DP_PIPELINE_DATA_SOURCE")
    logger.info("Reading the Adult files from %s", source)
    if source.startswith(("http://", "https://")):
        return _from_archive(source, _download(source))
    if source.startswith("s3://"):
        return _from_s3(source)
    return _from_local_path(Path(source))


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            return response.read()
    except OSError as error:
        raise SourceError(
            f"Could not download {url}: {error}. Offline, point DP_PIPELINE_DATA_SOURCE "
            "at a local folder that contains adult.data and adult.test."
        ) from error


def _from_s3(source: str) -> dict[str, bytes]:
    if source.endswith(".zip"):
        return _from_archive(source, storage.get_bytes(source))
    files = {}
    for name in ADULT_FILES:
        uri = storage.join(source, name)
        try:
            files[name] = storage.get_bytes(uri)
        except Exception as error:  # botocore raises several unrelated types here.
            raise SourceError(f"Could not read {uri}: {error}") from error
    return files


def _from_local_path(path: Path) -> dict[str, bytes]:
    if path.is_file() and path.suffix == ".zip":
        return _from_archive(str(path), path.read_bytes())
    if not path.is_dir():
        raise SourceError(f"The data source {str(path)!r} is neither a folder nor a zip file")
    files = {}
    for name in ADULT_FILES:
        file_path = path / name
        if not file_path.is_file():
            raise SourceError(f"{name} not found in {path}")
        files[name] = file_path.read_bytes()
    return files


def _from_archive(origin: str, archive: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            members = {Path(member).name: member for member in zipped.namelist()}
            missing = [name for name in ADULT_FILES if name not in members]
            if missing:
                raise SourceError(f"{origin} does not contain {', '.join(missing)}")
            return {name: zipped.read(members[name]) for name in ADULT_FILES}
    except zipfile.BadZipFile as error:
        raise SourceError(f"{origin} is not a zip archive: {error}") from error

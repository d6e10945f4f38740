"""Ingest from each kind of source, with digest checks, against a real S3 server."""

from __future__ import annotations

import functools
import http.server
import io
import threading
import zipfile

import pytest

from dp_pipeline import storage
from dp_pipeline.errors import ChecksumMismatchError, SourceError
from dp_pipeline.ingest import ingest, read_source

ADULT_FILES = ("adult.data", "adult.test")


@pytest.fixture(scope="module")
def adult_zip(adult_dir, tmp_path_factory):
    """A zip laid out like the UCI download, with the files in a subfolder."""
    path = tmp_path_factory.mktemp("zip") / "adult.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in (*ADULT_FILES, "adult.names"):
            archive.write(adult_dir / name, f"adult/{name}")
    return path


@pytest.fixture(scope="module")
def http_server(adult_zip):
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(adult_zip.parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def assert_original(files, adult_dir):
    for name in ADULT_FILES:
        assert files[name] == (adult_dir / name).read_bytes()


def test_read_local_folder(adult_dir):
    assert_original(read_source(str(adult_dir)), adult_dir)


def test_read_local_zip(adult_zip, adult_dir):
    assert_original(read_source(str(adult_zip)), adult_dir)


def test_read_http_zip(http_server, adult_dir):
    assert_original(read_source(f"{http_server}/adult.zip"), adult_dir)


def test_read_s3_prefix(s3_server, adult_dir):
    prefix = f"s3://{s3_server['bucket']}/source"
    for name in ADULT_FILES:
        storage.put_bytes(f"{prefix}/{name}", (adult_dir / name).read_bytes())
    assert_original(read_source(prefix), adult_dir)


def test_read_unreachable_url_names_url():
    with pytest.raises(SourceError, match="Could not download http://127.0.0.1:9/adult.zip"):
        read_source("http://127.0.0.1:9/adult.zip")


def test_read_folder_without_files(tmp_path):
    with pytest.raises(SourceError, match=f"adult.data not found in {tmp_path}"):
        read_source(str(tmp_path))


def test_read_missing_path():
    with pytest.raises(SourceError, match="is neither a folder nor a zip file"):
        read_source("/nonexistent/adult")


def test_read_zip_without_test_file(tmp_path):
    path = tmp_path / "partial.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("adult.data", "x")
    with pytest.raises(SourceError, match="does not contain adult.test"):
        read_source(str(path))


def test_read_corrupt_zip(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(SourceError, match="is not a zip archive"):
        read_source(str(path))


def test_read_missing_s3_object(s3_server):
    with pytest.raises(SourceError, match="Could not read s3://unit/nothing-here/adult.data"):
        read_source(f"s3://{s3_server['bucket']}/nothing-here")


def test_ingest_copies_files_and_digests(s3_server, adult_dir):
    prefix = f"s3://{s3_server['bucket']}/runs/ingest"
    result = ingest(str(adult_dir), prefix)
    assert result["train"] == f"{prefix}/raw/adult.data"
    assert storage.get_bytes(result["test"]) == (adult_dir / "adult.test").read_bytes()
    assert result["train_sha256"].startswith("5b00264637dbfec3")


def test_ingest_rejects_modified_file(s3_server, adult_dir, tmp_path):
    for name in ADULT_FILES:
        (tmp_path / name).write_bytes((adult_dir / name).read_bytes())
    (tmp_path / "adult.data").write_bytes((adult_dir / "adult.data").read_bytes()[:-100])
    with pytest.raises(ChecksumMismatchError, match="adult.data: SHA-256 mismatch, expected 5b00"):
        ingest(str(tmp_path), f"s3://{s3_server['bucket']}/runs/modified")


def test_ingest_accepts_modified_file_when_verification_is_off(s3_server, adult_dir, tmp_path):
    for name in ADULT_FILES:
        (tmp_path / name).write_bytes((adult_dir / name).read_bytes())
    (tmp_path / "adult.data").write_bytes(b"changed")
    result = ingest(
        str(tmp_path), f"s3://{s3_server['bucket']}/runs/unverified", verify_checksums=False
    )
    assert storage.get_bytes(result["train"]) == b"changed"


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_read_s3_zip(s3_server, adult_dir):
    uri = f"s3://{s3_server['bucket']}/archives/adult.zip"
    storage.put_bytes(
        uri, zip_bytes({name: (adult_dir / name).read_bytes() for name in ADULT_FILES})
    )
    assert_original(read_source(uri), adult_dir)

"""S3 URIs and the per-run prefix."""

from __future__ import annotations

import pytest

from dp_pipeline import storage


def test_parse_s3_uri():
    assert storage.parse_s3_uri("s3://bucket/a/b.json") == ("bucket", "a/b.json")


@pytest.mark.parametrize("uri", ["http://bucket/key", "s3://", "/local/path"])
def test_parse_s3_uri_rejects_other_uris(uri):
    with pytest.raises(ValueError, match="S3 URI|s3:// URI"):
        storage.parse_s3_uri(uri)


def test_run_prefix_makes_run_id_key_safe():
    prefix = storage.run_prefix("b", "dag", "manual__2026-12-04T08:35:21.447152+00:00")
    assert prefix == "s3://b/runs/dag/manual__2026-12-04T08_35_21.447152_00_00"


def test_run_prefix_is_deterministic():
    first = storage.run_prefix("b", "dag", "scheduled__2026-11-29T00:00:00+00:00")
    second = storage.run_prefix("b", "dag", "scheduled__2026-11-29T00:00:00+00:00")
    assert first == second


def test_join_strips_duplicate_slashes():
    assert storage.join("s3://b/runs/", "/raw/", "adult.data") == "s3://b/runs/raw/adult.data"


def test_json_round_trip(s3_server):
    uri = f"s3://{s3_server['bucket']}/json/report.json"
    storage.put_json(uri, {"epsilon": 1.5, "passed": True})
    assert storage.get_json(uri) == {"epsilon": 1.5, "passed": True}


def test_put_overwrites_same_key(s3_server):
    uri = f"s3://{s3_server['bucket']}/overwrite/object"
    storage.put_bytes(uri, b"first try")
    storage.put_bytes(uri, b"retry")
    assert storage.get_bytes(uri) == b"retry"

"""Validation of raw Adult files: what is refused, with which message, and what is accepted."""

from __future__ import annotations

import json

import pytest
from adult_rows import RICH_ROW, TRAIN_ROW, adult_data_file, adult_test_file, replace_line

from dp_pipeline import storage
from dp_pipeline.errors import DataValidationError
from dp_pipeline.validate import parse_adult_file, validate


def test_parse_train_file_counts_rows_labels_and_missing():
    parsed = parse_adult_file("adult.data", adult_data_file(120))
    assert parsed.report.rows == 120
    assert parsed.report.label_counts == {"<=50K": 80, ">50K": 40}
    assert parsed.report.missing_values == {
        "native-country": 40,
        "occupation": 40,
        "workclass": 40,
    }


def test_parse_types_columns():
    parsed = parse_adult_file("adult.data", adult_data_file(120))
    assert parsed.columns["age"][:2] == [39, 52]
    assert parsed.columns["workclass"][2] is None
    assert parsed.columns["income"][:2] == [0, 1]


def test_parse_test_file_strips_header_and_full_stops():
    parsed = parse_adult_file("adult.test", adult_test_file(120))
    assert parsed.report.rows == 120
    assert parsed.report.format_variations == ["120 rows where the published file has 16281"]


@pytest.mark.parametrize(
    ("line", "new_line", "match"),
    [
        (5, TRAIN_ROW.replace("39, ", "39, 1, ", 1), "line 5: expected 15 comma-separated fields"),
        (7, TRAIN_ROW.rsplit(", ", 1)[0], "line 7: expected 15 comma-separated fields, found 14"),
        (3, TRAIN_ROW.replace("39,", "thirty,"), "line 3 column 'age': expected an integer"),
        (4, TRAIN_ROW.replace("39,", "230,"), r"'age': value out of the valid range \[0, 120\]"),
        (
            9,
            TRAIN_ROW.replace("State-gov", "Space-gov"),
            "line 9 column 'workclass': unknown category",
        ),
        (2, TRAIN_ROW.replace("<=50K", "50K+"), "line 2 column 'income': label must be"),
        (
            6,
            TRAIN_ROW.replace(", 40,", ", ,"),
            "line 6 column 'hours-per-week': expected an integer",
        ),
    ],
)
def test_parse_rejects_bad_row_naming_line_and_column(line, new_line, match):
    data = replace_line(adult_data_file(120), line, new_line)
    with pytest.raises(DataValidationError, match=match) as raised:
        parse_adult_file("adult.data", data)
    assert raised.value.file_name == "adult.data"
    assert raised.value.line == line


def test_parse_rejects_empty_file():
    with pytest.raises(DataValidationError, match="adult.data: the file is empty"):
        parse_adult_file("adult.data", b"\n\n")


def test_parse_rejects_binary_file():
    with pytest.raises(DataValidationError, match="line 1: binary data, not a CSV text file"):
        parse_adult_file("adult.data", b"PK\x03\x04\x00\x00garbage")


def test_parse_rejects_non_utf8_text():
    data = adult_data_file(120).replace(b"State-gov", b"St\xffte-gov", 1)
    with pytest.raises(DataValidationError, match="line 1: the file is not UTF-8"):
        parse_adult_file("adult.data", data)


def test_parse_rejects_truncated_file():
    data = adult_data_file(120)[:-40]
    with pytest.raises(DataValidationError, match="line 120: expected 15 comma-separated"):
        parse_adult_file("adult.data", data)


def test_parse_rejects_too_few_rows():
    with pytest.raises(DataValidationError, match="expected at least 100 rows, found 10"):
        parse_adult_file("adult.data", adult_data_file(10))


def test_parse_accepts_windows_line_endings():
    parsed = parse_adult_file("adult.data", adult_data_file(120, newline="\r\n"))
    assert parsed.report.rows == 120
    assert "Windows (CRLF) line endings" in parsed.report.format_variations


def test_parse_accepts_test_file_without_header():
    data = adult_test_file(120).split(b"\n", 1)[1]
    parsed = parse_adult_file("adult.test", data)
    assert parsed.report.rows == 120
    assert "no '|1x3 Cross validator' first line" in parsed.report.format_variations


def test_parse_accepts_test_label_without_stop():
    data = replace_line(adult_test_file(120), 2, RICH_ROW)
    parsed = parse_adult_file("adult.test", data)
    assert "1 labels written '>50K'" in parsed.report.format_variations


def test_parse_accepts_blank_lines_between_rows():
    data = replace_line(adult_data_file(120), 10, "")
    parsed = parse_adult_file("adult.data", data)
    assert parsed.report.rows == 119
    assert "1 blank lines between rows" in parsed.report.format_variations


def test_parse_accepts_extra_spaces():
    data = replace_line(adult_data_file(120), 1, TRAIN_ROW.replace(", ", " ,  "))
    assert parse_adult_file("adult.data", data).report.rows == 120


@pytest.mark.parametrize("name", ["adult.data", "adult.test"])
def test_parse_real_file_has_published_counts(adult_dir, name):
    parsed = parse_adult_file(name, (adult_dir / name).read_bytes())
    assert parsed.report.rows == {"adult.data": 32_561, "adult.test": 16_281}[name]
    assert parsed.report.format_variations == []


def test_parse_real_train_file_has_missing_values(adult_dir):
    parsed = parse_adult_file("adult.data", (adult_dir / "adult.data").read_bytes())
    assert parsed.report.missing_values == {
        "native-country": 583,
        "occupation": 1843,
        "workclass": 1836,
    }
    assert parsed.report.label_counts == {"<=50K": 24_720, ">50K": 7_841}


def test_validate_writes_report(s3_server):
    prefix = f"s3://{s3_server['bucket']}/validate-ok"
    raw = {
        "train": storage.put_bytes(f"{prefix}/adult.data", adult_data_file(120)),
        "test": storage.put_bytes(f"{prefix}/adult.test", adult_test_file(120)),
    }
    result = validate(raw, f"{prefix}/report.json")
    report = storage.get_json(result["report"])
    assert result["train_rows"] == 120
    assert report["passed"] is True
    assert report["files"]["test"]["rows"] == 120


def test_validate_failure_still_writes_report(s3_server):
    prefix = f"s3://{s3_server['bucket']}/validate-bad"
    bad = replace_line(adult_data_file(120), 8, TRAIN_ROW.replace("77516", "many"))
    raw = {
        "train": storage.put_bytes(f"{prefix}/adult.data", bad),
        "test": storage.put_bytes(f"{prefix}/adult.test", adult_test_file(120)),
    }
    with pytest.raises(DataValidationError, match="line 8 column 'fnlwgt'"):
        validate(raw, f"{prefix}/report.json")
    report = json.loads(storage.get_bytes(f"{prefix}/report.json"))
    assert report["passed"] is False
    assert "line 8 column 'fnlwgt'" in report["error"]

"""Validate step: check the raw Adult files against the schema in adult.names.

The parser is strict about content and lenient about harmless format variations. It
records each variation in the report: Windows line endings, blank lines, a missing or
extra trailing full stop on labels, and a test file without its ``|1x3 Cross validator``
first line.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field

from dp_pipeline import adult, storage
from dp_pipeline.errors import DataValidationError

logger = logging.getLogger(__name__)

MIN_ROWS = 100
_LABELS = {adult.POSITIVE_LABEL: 1, adult.NEGATIVE_LABEL: 0}


@dataclass
class FileReport:
    """Validation findings for one file."""

    file_name: str
    rows: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    missing_values: dict[str, int] = field(default_factory=dict)
    format_variations: list[str] = field(default_factory=list)


@dataclass
class ParsedFile:
    """The rows of one file as typed columns: ints, strings with None for ``?``, 0/1 labels."""

    columns: dict[str, list]
    report: FileReport


def parse_adult_file(file_name: str, data: bytes) -> ParsedFile:
    """Parse and validate one Adult file; raise DataValidationError on the first violation."""
    text = _decode(file_name, data)
    report = FileReport(file_name)
    if "\r\n" in text:
        report.format_variations.append("Windows (CRLF) line endings")
    lines = text.replace("\r\n", "\n").split("\n")
    start = _skip_header(file_name, lines, report)

    columns: dict[str, list] = {name: [] for name in adult.COLUMNS}
    missing: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    label_variants: Counter[str] = Counter()
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    blank_lines = 0
    for index in range(start, end):
        line = lines[index]
        if not line.strip():
            blank_lines += 1
            continue
        _parse_row(file_name, index + 1, line, columns, missing, labels, label_variants)

    rows = len(columns[adult.LABEL])
    _check_row_count(file_name, rows, report)
    if blank_lines:
        report.format_variations.append(f"{blank_lines} blank lines between rows")
    for variant, count in sorted(label_variants.items()):
        report.format_variations.append(f"{count} labels written {variant!r}")
    report.rows = rows
    report.label_counts = dict(sorted(labels.items()))
    report.missing_values = dict(sorted(missing.items()))
    return ParsedFile(columns, report)


def validate(raw: dict[str, str], report_uri: str) -> dict:
    """Validate the train and test files named in ``raw`` and write a JSON report.

    A failing check writes the report with the error before raising, so a failed run
    still leaves a record of what was wrong.
    """
    report: dict = {"passed": False, "files": {}}
    try:
        for role in ("train", "test"):
            file_name = adult.TRAIN_FILE if role == "train" else adult.TEST_FILE
            parsed = parse_adult_file(file_name, storage.get_bytes(raw[role]))
            file_report = asdict(parsed.report)
            file_report["sha256"] = raw.get(f"{role}_sha256")
            report["files"][role] = file_report
            for variation in parsed.report.format_variations:
                logger.warning("%s: accepted format variation: %s", file_name, variation)
            logger.info("%s: %d valid rows", file_name, parsed.report.rows)
    except DataValidationError as error:
        report["error"] = str(error)
        storage.put_json(report_uri, report)
        raise
    report["passed"] = True
    storage.put_json(report_uri, report)
    return {"report": report_uri, "train_rows": report["files"]["train"]["rows"]}


def _decode(file_name: str, data: bytes) -> str:
    if not data.strip():
        raise DataValidationError(file_name, "the file is empty")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise DataValidationError(file_name, "binary data, not a CSV text file", line=line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataValidationError(
            file_name, "the file is not UTF-8 or ASCII text", line=line
        ) from error


def _skip_header(file_name: str, lines: list[str], report: FileReport) -> int:
    first = lines[0].strip()
    if first == adult.TEST_FILE_FIRST_LINE:
        if file_name != adult.TEST_FILE:
            report.format_variations.append(f"first line {first!r} skipped")
        return 1
    if first.startswith("|"):
        report.format_variations.append(f"first line {first!r} skipped")
        return 1
    if file_name == adult.TEST_FILE:
        report.format_variations.append(f"no {adult.TEST_FILE_FIRST_LINE!r} first line")
    return 0


def _parse_row(file_name, line_number, line, columns, missing, labels, label_variants) -> None:
    fields = [value.strip() for value in line.split(",")]
    if len(fields) != len(adult.COLUMNS):
        # The count does not show which column is missing or extra, so the message names
        # the column where the row stops matching the schema.
        if len(fields) < len(adult.COLUMNS):
            where = f"the row ends after column {adult.COLUMNS[len(fields) - 1]!r}"
        else:
            where = f"the row goes on after the last column {adult.COLUMNS[-1]!r}"
        raise DataValidationError(
            file_name,
            f"expected {len(adult.COLUMNS)} comma-separated fields, found {len(fields)}: {where}",
            line=line_number,
        )
    for column, value in zip(adult.FEATURE_COLUMNS, fields[:-1], strict=True):
        if column in adult.CATEGORIES:
            columns[column].append(_categorical(file_name, line_number, column, value, missing))
        else:
            columns[column].append(_integer(file_name, line_number, column, value))
    label = fields[-1]
    canonical = label.removesuffix(".")
    if canonical not in _LABELS:
        raise DataValidationError(
            file_name,
            f"label must be {adult.POSITIVE_LABEL!r} or {adult.NEGATIVE_LABEL!r}, with a "
            "trailing full stop in adult.test",
            line=line_number,
            column=adult.LABEL,
            value=label,
        )
    expects_stop = file_name == adult.TEST_FILE
    if label.endswith(".") != expects_stop:
        label_variants[label] += 1
    labels[canonical] += 1
    columns[adult.LABEL].append(_LABELS[canonical])


def _categorical(file_name, line_number, column, value, missing) -> str | None:
    if value == adult.MISSING:
        missing[column] += 1
        return None
    if value not in adult.CATEGORIES[column]:
        raise DataValidationError(
            file_name,
            f"unknown category, expected one of the {len(adult.CATEGORIES[column])} values "
            "listed in adult.names or '?'",
            line=line_number,
            column=column,
            value=value,
        )
    return value


def _integer(file_name, line_number, column, value) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataValidationError(
            file_name,
            "expected an integer",
            line=line_number,
            column=column,
            value=value,
        ) from None
    low, high = adult.VALID_RANGES[column]
    if not low <= number <= high:
        raise DataValidationError(
            file_name,
            f"value out of the valid range [{low}, {high}]",
            line=line_number,
            column=column,
            value=value,
        )
    return number


def _check_row_count(file_name: str, rows: int, report: FileReport) -> None:
    if rows < MIN_ROWS:
        raise DataValidationError(file_name, f"expected at least {MIN_ROWS} rows, found {rows}")
    expected = adult.KNOWN_ROW_COUNTS[file_name]
    if rows != expected:
        report.format_variations.append(f"{rows} rows where the published file has {expected}")

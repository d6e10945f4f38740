"""Bad input data fails the run at once, with a message that locates the defect.

A representative subset goes through the whole DAG; the other defects go through the
validate step itself, against the stack's real S3 server, in the task virtualenv's
environment. tests/unit/test_validate.py covers the parser on small files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from faults_support import (
    earlier_tries,
    mlflow_runs,
    model_versions,
    production_versions,
    run_in_lifecycle_env,
    task_states,
)

from dp_pipeline.errors import PERMANENT_ERROR_MARK

pytestmark = pytest.mark.e2e

DOWNSTREAM = ("preprocess", "train", "evaluate", "register", "promote")


def truncated(data: bytes) -> tuple[bytes, str]:
    """Cut the file 40 bytes into a row, as an interrupted download would."""
    cut = data.index(b"\n", len(data) // 2) + 40
    line = data[:cut].count(b"\n") + 1
    fields = data[:cut].rsplit(b"\n", 1)[1].count(b",") + 1
    return data[
        :cut
    ], rf"adult\.data line {line}: expected 15 comma-separated fields, found {fields}"


def with_row_changed(data: bytes, line: int, change) -> bytes:
    lines = data.split(b"\n")
    lines[line - 1] = change(lines[line - 1])
    return b"\n".join(lines)


def without_column(data: bytes, index: int) -> bytes:
    rows = []
    for row in data.split(b"\n"):
        fields = row.split(b", ")
        rows.append(b", ".join(fields[:index] + fields[index + 1 :]) if len(fields) > 1 else row)
    return b"\n".join(rows)


def with_extra_column(data: bytes) -> bytes:
    return b"\n".join(row + b", 1" if row.strip() else row for row in data.split(b"\n"))


# case: (file name, change to the original bytes, verify_checksums, failing task, message)
DAG_CASES = {
    "checksum": (
        "adult.data",
        lambda data: data.replace(b"77516", b"77517", 1),
        True,
        "ingest",
        r"adult\.data: SHA-256 mismatch, expected 5b0026",
    ),
    "truncated": ("adult.data", truncated, False, "validate", None),
    "not-csv": (
        "adult.data",
        lambda data: b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>\n",
        False,
        "validate",
        r"adult\.data line 1: expected 15 comma-separated fields, found 1: the row ends after "
        r"column 'age'",
    ),
}
STEP_CASES = {
    "non-numeric value": (
        "adult.test",
        lambda data: with_row_changed(data, 10, lambda row: b"forty" + row[row.index(b",") :]),
        r"adult\.test line 10 column 'age': expected an integer, found 'forty'",
    ),
    "missing column": (
        "adult.data",
        lambda data: without_column(data, 3),
        r"adult\.data line 1: expected 15 comma-separated fields, found 14: the row ends after "
        r"column 'native-country'",
    ),
    "extra column": (
        "adult.data",
        with_extra_column,
        r"adult\.data line 1: expected 15 comma-separated fields, found 16: the row goes on "
        r"after the last column 'income'",
    ),
    "empty file": ("adult.test", lambda data: b"", r"adult\.test: the file is empty"),
    "label outside the classes": (
        "adult.data",
        lambda data: with_row_changed(data, 20, lambda row: row.rsplit(b", ", 1)[0] + b", <=60K"),
        r"adult\.data line 20 column 'income': label must be '>50K' or '<=50K'.*found '<=60K'",
    ),
    "binary file": (
        "adult.test",
        lambda data: b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4,
        r"adult\.test line 1: binary data, not a CSV text file",
    ),
}


def write_source(folder: Path, adult_dir: Path, name: str, change) -> tuple[Path, str | None]:
    """Write both Adult files to ``folder``, with ``change`` applied to the one named."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = None
    for file_name in ("adult.data", "adult.test"):
        data = (adult_dir / file_name).read_bytes()
        if file_name == name:
            data = change(data)
            if isinstance(data, tuple):
                data, expected = data
        (folder / file_name).write_bytes(data)
    return folder, expected


@pytest.mark.parametrize("case", list(DAG_CASES))
def test_dag_refuses_bad_file(fault_stack, baseline_run, dag_test, adult_dir, tmp_path, case):
    file_name, change, verify, failing_task, message = DAG_CASES[case]
    source, computed = write_source(tmp_path / "source", adult_dir, file_name, change)
    message = message or computed
    production_before = production_versions(fault_stack)
    run = dag_test(
        f"bad-data-{case}",
        {"epochs": 1, "data_source": str(source), "verify_checksums": verify},
    )
    record = run.wait()

    assert record["state"] == "failed", f"see {run.log_path}"
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    states = task_states(metadata, run.run_id)
    assert states[failing_task]["state"] == "failed"
    assert states[failing_task]["try_number"] == 1, "a data error was retried"
    assert earlier_tries(metadata, run.run_id, failing_task) == [], "a data error was retried"
    for task in DOWNSTREAM:
        assert states[task]["state"] == "upstream_failed", f"{task} is {states[task]['state']}"
    log = run.log_text()
    assert re.search(re.escape(PERMANENT_ERROR_MARK) + message, log), (
        f"no line of {run.log_path} matches {message!r}"
    )
    assert re.search(r"Retry policy decision .*action=fail", log), "the policy did not decide"
    assert mlflow_runs(fault_stack, run.run_id) == [], "the bad run reached MLflow"
    assert model_versions(fault_stack, run.run_id) == [], "the bad run registered a model"
    assert production_versions(fault_stack) == production_before


VALIDATE_EACH = """
import json
import sys
from pathlib import Path

from dp_pipeline import config, steps, storage

results = {}
for case, (train, test) in json.loads(sys.argv[1]).items():
    run = {"dag_id": "faults_validate", "run_id": case.replace(" ", "_")}
    prefix = storage.run_prefix(config.BUCKET.get(), run["dag_id"], run["run_id"])
    raw = {
        "train": storage.upload_file(Path(train), prefix + "/raw/adult.data"),
        "test": storage.upload_file(Path(test), prefix + "/raw/adult.test"),
    }
    try:
        steps.validate(run, raw)
    except Exception as error:
        results[case] = {"type": type(error).__name__, "message": str(error)}
    else:
        results[case] = {"type": None, "message": ""}
print(json.dumps(results))
"""


def test_validate_step_refuses_other_defects(fault_stack, adult_dir, tmp_path):
    cases = {}
    for index, (case, (file_name, change, _)) in enumerate(STEP_CASES.items()):
        folder, _ = write_source(tmp_path / f"case-{index}", adult_dir, file_name, change)
        cases[case] = (str(folder / "adult.data"), str(folder / "adult.test"))

    results = run_in_lifecycle_env(fault_stack, VALIDATE_EACH, json.dumps(cases))

    for case, (_, _, message) in STEP_CASES.items():
        assert results[case]["type"] == "DataValidationError", f"{case}: {results[case]}"
        pattern = re.escape(PERMANENT_ERROR_MARK) + message
        assert re.match(pattern, results[case]["message"]), f"{case}: {results[case]}"

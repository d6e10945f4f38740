"""The model server on the version that the DAG registered, against the real MLflow server.

The server runs in the TensorFlow environment as its own process, with a bearer token as
in the Compose deployment, and the tests talk to it over HTTP on loopback. The hot-swap
test comes last in this file because it promotes a second version, a copy of the first
with the same weights, which stays in Production for the tests that run after it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from e2e_support import LIFECYCLE_PYTHON, run_in_lifecycle_env
from support import REPOSITORY, free_port

from dp_pipeline import adult, config

pytestmark = pytest.mark.e2e

TOKEN = "e2e-serving-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOADGEN = REPOSITORY / "benchmarks/serving/loadgen.py"
START_TIMEOUT_SECONDS = 180
PARITY_ROWS = 300
FUZZ_MAX_EXAMPLES = 200
FUZZ_SEED = 20261204
FUZZ_DEADLINE_SECONDS = 300
# The DAG's default promotion gate, which the copied version passes like the original.
PROMOTION_ACCURACY_THRESHOLD = 0.80
PROMOTION_EPSILON_BUDGET = 2.0

RECORD = {
    "age": 39,
    "workclass": "State-gov",
    "fnlwgt": 77516,
    "education": "Bachelors",
    "education-num": 13,
    "marital-status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
    "capital-gain": 2174,
    "capital-loss": 0,
    "hours-per-week": 40,
    "native-country": "United-States",
}

# Rows of adult.test with "?" for missing values and an unseen country in every 50th row,
# scored by the pyfunc of one registry version loaded directly, without the server.
PYFUNC_PREDICTIONS = """
import json, sys
import mlflow.pyfunc
from dp_pipeline import adult
from dp_pipeline.preprocess import to_frame
from dp_pipeline.validate import parse_adult_file

test_file, model_name, version, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
frame = to_frame(parse_adult_file("adult.test", open(test_file, "rb").read()).columns)
rows = frame[list(adult.FEATURE_COLUMNS)].head(count).copy()
for column in adult.CATEGORIES:
    rows[column] = rows[column].fillna(adult.MISSING)
rows.loc[rows.index[::50], "native-country"] = "Atlantis"
output = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}").predict(rows)
print(json.dumps({
    "records": json.loads(rows.to_json(orient="records")),
    "probability": output["probability"].tolist(),
    "label": output["label"].tolist(),
    "unknown_categories": output["unknown_categories"].tolist(),
}))
"""


class ModelServer:
    """A ``python -m dp_serving`` process and how to reach it."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url = url
        self.process = process
        self.log_path = log_path

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=AUTH, timeout=60, **kwargs)

    def predict(self, records, **kwargs) -> requests.Response:
        kwargs.setdefault("headers", AUTH)
        return requests.post(f"{self.url}/predict", json={"records": records}, timeout=60, **kwargs)


def wait_ready(server: ModelServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"model server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            if requests.get(f"{server.url}/ready", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"model server not ready after {timeout} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def model_server(stack, pipeline_run):
    if not LIFECYCLE_PYTHON.exists():
        pytest.fail(f"{LIFECYCLE_PYTHON} not found; run `make install-lifecycle` first")
    assert pipeline_run["record"]["state"] == "success", f"see {pipeline_run['log']}"
    port = free_port()
    env = {
        **stack.env,
        "DP_SERVING_PORT": str(port),
        "DP_SERVING_POLL_SECONDS": "1",
        "DP_SERVING_TOKEN": TOKEN,
    }
    log_path = stack.log_dir / "model-server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(LIFECYCLE_PYTHON), "-m", "dp_serving"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ModelServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server, START_TIMEOUT_SECONDS)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Predictions and metadata ------------------------------------------------------------


def test_server_matches_pyfunc_on_adult_test(stack, model_server, adult_dir):
    version = model_server.get("/model").json()["version"]
    expected = run_in_lifecycle_env(
        stack,
        PYFUNC_PREDICTIONS,
        str(adult_dir / "adult.test"),
        config.MODEL_NAME.get(stack.env),
        version,
        str(PARITY_ROWS),
    )
    records = expected["records"]
    assert len(records) == PARITY_ROWS
    served = []
    # Single-record requests first, then batches, so both paths are compared.
    for record in records[:20]:
        response = model_server.predict([record])
        assert response.status_code == 200, response.text
        served.extend(response.json()["predictions"])
    for start in range(20, PARITY_ROWS, 100):
        response = model_server.predict(records[start : start + 100])
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == version
        served.extend(response.json()["predictions"])
    assert len(served) == PARITY_ROWS
    for index, prediction in enumerate(served):
        assert prediction["probability"] == pytest.approx(
            expected["probability"][index], abs=1e-6
        ), f"row {index}"
        assert prediction["label"] == expected["label"][index], f"row {index}"
        text = expected["unknown_categories"][index]
        wanted = dict(entry.split("=", 1) for entry in text.split(";")) if text else {}
        assert prediction["unknown_categories"] == wanted, f"row {index}"
    assert served[0]["unknown_categories"] == {"native-country": "Atlantis"}


def test_model_endpoint_reports_registry_metadata(model_server, pipeline_run):
    summary = pipeline_run["summary"]
    model = model_server.get("/model")
    assert model.status_code == 200, model.text
    info = model.json()
    assert info["name"] == summary.model_name
    assert info["version"] == summary.version
    assert info["stage"] == "Production"
    assert "production" in info["aliases"]
    assert info["resolved_by"] == "alias"
    assert info["run_id"] == summary.mlflow_run_id
    assert info["epsilon"] == pytest.approx(summary.epsilon)
    assert info["delta"] == pytest.approx(summary.delta)
    assert info["accuracy"] == pytest.approx(summary.accuracy)
    assert info["roc_auc"] == pytest.approx(summary.roc_auc)
    assert info["training_date"] is not None
    assert info["registered_at"] is not None


def test_health_reports_ready_version(model_server, pipeline_run):
    health = requests.get(f"{model_server.url}/health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "up"
    assert body["ready"] is True
    assert body["model_version"] == pipeline_run["summary"].version
    assert body["last_error"] is None


# --- Bad requests ------------------------------------------------------------------------


def body_with(**changes) -> bytes:
    record = {**RECORD}
    for name, value in changes.items():
        column = name.replace("_", "-")
        if value is ...:
            del record[column]
        else:
            record[column] = value
    return json.dumps({"records": [record]}).encode()


JSON = {"Content-Type": "application/json", **AUTH}

# (case id, body, headers, status, message fragment)
BAD_REQUESTS = [
    ("missing field", body_with(age=...), JSON, 422, "records[0].age: missing"),
    ("string for integer", body_with(age="39"), JSON, 422,
     'records[0].age: expected an integer from 0 to 120, found "39" (a string)'),
    ("above range", body_with(hours_per_week=168), JSON, 422,
     "records[0].hours-per-week: expected an integer from 1 to 99, found 168"),
    ("below range", body_with(capital_loss=-5), JSON, 422,
     "records[0].capital-loss: expected an integer from 0 to 99999, found -5"),
    ("number for category", body_with(education=13), JSON, 422,
     "records[0].education: expected a string"),
    ("unknown field", json.dumps({"records": [{**RECORD, "income": "<=50K"}]}).encode(), JSON,
     422, "records[0].income: unknown field"),
    ("second record invalid", json.dumps({"records": [RECORD, {**RECORD, "sex": None}]}).encode(),
     JSON, 422, "records[1].sex: expected a string"),
    ("empty list", b'{"records": []}', JSON, 422, "records: expected at least 1 record"),
    ("bare list", json.dumps([RECORD]).encode(), JSON, 422, "found a JSON array"),
    ("malformed JSON", b'{"records": [{"age": 39,', JSON, 400,
     "The request body is not valid JSON"),
    ("oversized batch", json.dumps({"records": [RECORD] * 10_001}).encode(), JSON, 413,
     "records: expected at most 10000 records in one request, found 10001"),
    ("not JSON", b"age=39", {"Content-Type": "application/x-www-form-urlencoded", **AUTH}, 415,
     "Expected a JSON body with Content-Type application/json"),
    ("missing token", body_with(), {"Content-Type": "application/json"}, 401,
     "Missing bearer token"),
    ("wrong token", body_with(), {"Content-Type": "application/json",
     "Authorization": "Bearer wrong"}, 401, "Invalid bearer token"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_gets_4xx_with_message(model_server, body, headers, status, fragment):
    response = requests.post(f"{model_server.url}/predict", data=body, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    payload = response.json()
    assert fragment in payload["message"]
    assert payload["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


# --- Fuzzing -----------------------------------------------------------------------------


def test_fuzzing_finds_no_server_error(model_server, tmp_path):
    pytest.importorskip(
        "schemathesis", reason="schemathesis is not installed in .venv (requirements.txt)"
    )
    # The server rejects a batch over the row limit with 413, which OpenAPI documents but
    # schemathesis counts as a rejection only when configured to.
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(
        "[checks.negative_data_rejection]\nexpected-statuses = [400, 401, 413, 415, 422]\n"
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(settings),
        "run",
        f"{model_server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(FUZZ_MAX_EXAMPLES),
        "--seed",
        str(FUZZ_SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_DEADLINE_SECONDS,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert "Traceback" not in model_server.log_tail(200_000)


# --- Hot swap under load (promotes a second version, so it runs last) -------------------


def copy_and_promote(stack, pipeline_run, monkeypatch) -> str:
    """Register the Production version's model files again as a new version and promote it.

    The copy has the same weights, so predictions stay the same; the server still has to
    download, load and swap in a different version.
    """
    import mlflow

    from dp_pipeline.registry import promote, wait_until_ready

    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.env["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient(stack.env["MLFLOW_TRACKING_URI"])
    summary = pipeline_run["summary"]
    current = client.get_model_version(summary.model_name, summary.version)
    # MLflow 3 registers a logged model (source models:/m-...) only together with its id.
    model_id = current.model_id or current.source.removeprefix("models:/")
    copy = client.create_model_version(
        summary.model_name,
        source=current.source,
        run_id=current.run_id,
        model_id=model_id,
        tags={key: current.tags[key] for key in ("accuracy", "roc_auc", "epsilon", "delta")},
        description=f"Copy of version {current.version} for the hot-swap test.",
    )
    wait_until_ready(client, summary.model_name, copy.version, 120)
    outcome = promote(
        model_name=summary.model_name,
        version=copy.version,
        accuracy=float(current.tags["accuracy"]),
        epsilon=float(current.tags["epsilon"]),
        accuracy_threshold=PROMOTION_ACCURACY_THRESHOLD,
        epsilon_budget=PROMOTION_EPSILON_BUDGET,
    )
    assert outcome["promoted"], outcome
    return str(copy.version)


def test_hot_swap_under_load_fails_no_request(
    stack, pipeline_run, model_server, tmp_path, monkeypatch
):
    old_version = model_server.get("/model").json()["version"]
    body_file = tmp_path / "one-record.json"
    body_file.write_text(json.dumps({"records": [RECORD]}))
    load = subprocess.Popen(
        [
            sys.executable,
            str(LOADGEN),
            "--url",
            f"{model_server.url}/predict",
            "--body-file",
            str(body_file),
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--concurrency",
            "2",
            "--max-requests",
            "200000",
            "--max-seconds",
            "120",
            "--read-version",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        new_version = copy_and_promote(stack, pipeline_run, monkeypatch)
        deadline = time.monotonic() + 90
        while model_server.get("/model").json()["version"] != new_version:
            assert time.monotonic() < deadline, (
                f"no swap to {new_version}:\n{model_server.log_tail()}"
            )
            assert load.poll() is None, "the load process ended before the swap"
            time.sleep(0.2)
        time.sleep(2)
    finally:
        load.send_signal(signal.SIGTERM)
        output, errors = load.communicate(timeout=60)
    assert load.returncode == 0, errors
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["failed"] == 0, summary["failure_samples"]
    assert summary["connection_errors"] == 0
    assert summary["requests"] > 100
    assert summary["statuses"] == {"200": summary["requests"]}
    assert set(summary["versions"]) == {old_version, new_version}
    health = requests.get(f"{model_server.url}/health", timeout=30).json()
    assert health["model_version"] == new_version
    assert f"Now serving {config.MODEL_NAME.get(stack.env)} version {new_version}" in (
        model_server.log_tail(200_000)
    )


def test_census_schema_matches_adult_columns(model_server):
    schema = requests.get(f"{model_server.url}/openapi.json", timeout=30).json()
    record = schema["components"]["schemas"]["CensusRecord"]
    assert list(record["properties"]) == list(adult.FEATURE_COLUMNS)
    assert "HTTPBearer" in schema["components"]["securitySchemes"]

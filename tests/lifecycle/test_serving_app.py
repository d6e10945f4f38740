"""The model server on a small real IncomeClassifier, over HTTP on a loopback port.

The lifecycle environment has no httpx, so FastAPI's TestClient is unavailable: each test
runs uvicorn in a thread and talks to it with requests. A fake registry replaces MLflow,
so these tests cover validation, readiness, auth and swaps without a tracking server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
import tensorflow as tf
import uvicorn
from support import free_port

from dp_pipeline import adult
from dp_pipeline.features import AdultEncoder
from dp_pipeline.pyfunc_model import IncomeClassifier
from dp_serving import schemas
from dp_serving.app import create_app
from dp_serving.model_store import ModelStore
from dp_serving.scoring import parse_unknown_categories, scorer_for
from dp_serving.settings import Settings
from dp_serving.tracking import ProductionVersion, RegistryError, ServedModel

MODEL_NAME = "adult-income-dp"
TOKEN = "test-token-1234"
MAX_ROWS = 5
MAX_BODY_BYTES = 8_000
RECORD = dict(schemas.EXAMPLE_RECORD)


@pytest.fixture(scope="module")
def pyfunc_model(tmp_path_factory):
    """An IncomeClassifier pyfunc with a one-layer Keras model, saved and loaded by MLflow."""
    folder = tmp_path_factory.mktemp("pyfunc")
    encoder = AdultEncoder()
    tf.keras.utils.set_random_seed(7)
    keras_model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(len(encoder.feature_names),)),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    keras_path = folder / "model.keras"
    keras_model.save(keras_path)
    encoder_path = folder / "encoder.json"
    encoder_path.write_text(encoder.to_json(), encoding="utf-8")
    mlflow.pyfunc.save_model(
        str(folder / "pyfunc"),
        python_model=IncomeClassifier(),
        artifacts={"keras_model": str(keras_path), "encoder": str(encoder_path)},
        pip_requirements=[],
    )
    return mlflow.pyfunc.load_model(str(folder / "pyfunc"))


class FakeRegistry:
    """A ModelSource whose Production version, failures and scorers a test sets."""

    model_name = MODEL_NAME

    def __init__(self, pyfunc_model):
        self.pyfunc_model = pyfunc_model
        self.production: str | None = "1"
        self.registry_error: str | None = None
        self.broken_versions: set[str] = set()
        self.scorers: dict[str, object] = {}
        self.released: list[str] = []

    def find_production(self) -> ProductionVersion | None:
        if self.registry_error:
            raise RegistryError(self.registry_error)
        if self.production is None:
            return None
        return ProductionVersion(
            name=MODEL_NAME,
            version=self.production,
            stage="Production",
            aliases=("production",),
            resolved_by="alias",
            run_id=f"run-{self.production}",
            source=f"models:/m-{self.production}",
            tags={"epsilon": "0.96", "delta": "1e-05", "accuracy": "0.846", "roc_auc": "0.89"},
        )

    def load(self, production: ProductionVersion) -> ServedModel:
        if production.version in self.broken_versions:
            raise OSError(f"download of version {production.version} failed")
        scorer = self.scorers.get(production.version) or scorer_for(self.pyfunc_model)
        info = schemas.ModelInfo(
            name=MODEL_NAME,
            version=production.version,
            stage=production.stage,
            aliases=list(production.aliases),
            resolved_by="alias",
            run_id=production.run_id,
            source=production.source,
            epsilon=0.96,
            delta=1e-5,
            accuracy=0.846,
            roc_auc=0.89,
            training_date=None,
            registered_at=None,
            loaded_at="2026-01-01T00:00:00Z",
        )
        return ServedModel(info=info, scorer=scorer)

    def release(self, served: ServedModel) -> None:
        self.released.append(served.version)


class GatedScorer:
    """Scorer wrapper that blocks each call until the test opens the gate."""

    kind = "gated"

    def __init__(self, inner):
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def score(self, columns):
        self.entered.set()
        if not self.gate.wait(20):
            raise TimeoutError("the test never opened the gate")
        return self.inner.score(columns)


class FailingScorer:
    kind = "failing"

    def score(self, columns):
        raise RuntimeError("secret internal detail")


def wait_until(condition, timeout: float = 20.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(0.02)


@contextlib.contextmanager
def serving(store: ModelStore, **overrides):
    """Run the app on a free loopback port; yield its base URL."""
    settings = Settings(
        model_name=MODEL_NAME,
        poll_seconds=0,
        max_batch_rows=MAX_ROWS,
        max_body_bytes=MAX_BODY_BYTES,
        **overrides,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, store), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, message="uvicorn start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def registry(pyfunc_model):
    return FakeRegistry(pyfunc_model)


@pytest.fixture
def store(registry):
    return ModelStore(registry, poll_seconds=0)


@pytest.fixture
def server(store):
    with serving(store) as url:
        wait_until(lambda: store.current is not None, message="first model load")
        yield url


def predict(url: str, records, **kwargs) -> requests.Response:
    return requests.post(f"{url}/predict", json={"records": records}, timeout=30, **kwargs)


def random_records(count: int, seed: int) -> list[dict]:
    """Valid records drawn over every range and category, with some "?" and unseen values."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        record = {}
        for column in adult.FEATURE_COLUMNS:
            if column in adult.VALID_RANGES:
                low, high = adult.VALID_RANGES[column]
                record[column] = int(rng.integers(low, high + 1))
            else:
                choices = [*adult.CATEGORIES[column], adult.MISSING, "Unseen-value"]
                record[column] = str(rng.choice(choices))
        records.append(record)
    return records


# --- Predictions -------------------------------------------------------------------------


def test_predict_returns_probability_label_and_version(server, pyfunc_model):
    response = predict(server, [RECORD])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL_NAME
    assert body["model_version"] == "1"
    [prediction] = body["predictions"]
    expected = pyfunc_model.predict(pd.DataFrame([RECORD]))
    assert prediction["probability"] == pytest.approx(expected["probability"][0], abs=1e-6)
    assert prediction["label"] == expected["label"][0]
    assert prediction["unknown_categories"] == {}
    assert response.headers["x-request-id"]


def test_predict_matches_pyfunc_on_random_records(server, pyfunc_model):
    for start in range(0, 200, MAX_ROWS):
        batch = random_records(MAX_ROWS, seed=start)
        response = predict(server, batch)
        assert response.status_code == 200, response.text
        expected = pyfunc_model.predict(pd.DataFrame(batch))
        predictions = response.json()["predictions"]
        for index, prediction in enumerate(predictions):
            assert prediction["probability"] == pytest.approx(
                expected["probability"][index], abs=1e-6
            )
            assert prediction["label"] == expected["label"][index]
            assert prediction["unknown_categories"] == parse_unknown_categories(
                expected["unknown_categories"][index]
            )


def test_predict_reports_unknown_categories_per_record(server):
    unseen = {**RECORD, "native-country": "Atlantis", "occupation": "Astronaut"}
    missing = {**RECORD, "workclass": "?", "occupation": "?", "native-country": "?"}
    response = predict(server, [RECORD, unseen, missing])
    assert response.status_code == 200, response.text
    found = [prediction["unknown_categories"] for prediction in response.json()["predictions"]]
    assert found == [{}, {"native-country": "Atlantis", "occupation": "Astronaut"}, {}]


def test_integral_float_counts_as_integer(server):
    response = predict(server, [{**RECORD, "age": 39.0, "fnlwgt": 77516.0}])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["probability"] == pytest.approx(
        predict(server, [RECORD]).json()["predictions"][0]["probability"], abs=1e-9
    )


def test_predict_accepts_max_batch(server):
    response = predict(server, [RECORD] * MAX_ROWS)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == MAX_ROWS


# --- Bad requests ------------------------------------------------------------------------


def with_record(**changes) -> dict:
    record = dict(RECORD)
    for name, value in changes.items():
        column = name.replace("_", "-")
        if value is ...:
            del record[column]
        else:
            record[column] = value
    return {"records": [record]}


def json_body(value) -> bytes:
    return json.dumps(value).encode()


# (case id, raw body, content type, status, error code, message fragment, record, field)
BAD_REQUESTS = [
    ("missing field", json_body(with_record(age=...)), "application/json", 422,
     "invalid_request", "records[0].age: missing; expected an integer from 0 to 120", 0, "age"),
    ("string for integer", json_body(with_record(age="39")), "application/json", 422,
     "invalid_request", 'records[0].age: expected an integer from 0 to 120, found "39" (a string)',
     0, "age"),
    ("fraction for integer", json_body(with_record(age=39.5)), "application/json", 422,
     "invalid_request", "found 39.5 (a number)", 0, "age"),
    ("boolean for integer", json_body(with_record(capital_gain=True)), "application/json", 422,
     "invalid_request", "records[0].capital-gain: expected an integer from 0 to 99999, found "
     "true (a boolean)", 0, "capital-gain"),
    ("NaN for integer", b'{"records": [' + json_body(RECORD)[:-1] + b', "age": NaN}]}',
     "application/json", 422, "invalid_request", "records[0].age: expected an integer", 0, "age"),
    ("above range", json_body(with_record(hours_per_week=100)), "application/json", 422,
     "invalid_request", "records[0].hours-per-week: expected an integer from 1 to 99, found 100",
     0, "hours-per-week"),
    ("below range", json_body(with_record(age=-1)), "application/json", 422, "invalid_request",
     "records[0].age: expected an integer from 0 to 120, found -1", 0, "age"),
    ("zero weight", json_body(with_record(fnlwgt=0)), "application/json", 422, "invalid_request",
     "records[0].fnlwgt: expected an integer from 1 to 10000000, found 0", 0, "fnlwgt"),
    ("huge integer", json_body(with_record(education_num=10**30)), "application/json", 422,
     "invalid_request", "records[0].education-num: expected an integer from 1 to 16", 0,
     "education-num"),
    ("null category", json_body(with_record(workclass=None)), "application/json", 422,
     "invalid_request", 'records[0].workclass: expected a string of 1 to 100 characters: a value '
     'listed in adult.names, or "?" for a missing value, found null', 0, "workclass"),
    ("number for category", json_body(with_record(sex=1)), "application/json", 422,
     "invalid_request", "records[0].sex: expected a string", 0, "sex"),
    ("empty category", json_body(with_record(race="")), "application/json", 422,
     "invalid_request", "records[0].race: expected a string of 1 to 100 characters", 0, "race"),
    ("long category", json_body(with_record(race="x" * 101)), "application/json", 422,
     "invalid_request", "records[0].race: expected a string of 1 to 100 characters", 0, "race"),
    ("unknown record field", json_body({"records": [{**RECORD, "income": ">50K"}]}),
     "application/json", 422, "invalid_request", "records[0].income: unknown field", 0, "income"),
    ("snake case field", json_body({"records": [{**RECORD, "education_num": 13}]}),
     "application/json", 422, "invalid_request", "records[0].education_num: unknown field", 0,
     "education_num"),
    ("second record invalid", json_body({"records": [RECORD, {**RECORD, "age": 121}]}),
     "application/json", 422, "invalid_request", "records[1].age: expected an integer from 0 to "
     "120, found 121", 1, "age"),
    ("record not an object", json_body({"records": [RECORD, 7]}), "application/json", 422,
     "invalid_request", "records[1]: expected a JSON object of census fields, found 7", 1, None),
    ("empty records", json_body({"records": []}), "application/json", 422, "invalid_request",
     "records: expected at least 1 record, found an empty array", None, "records"),
    ("records not an array", json_body({"records": {"age": 1}}), "application/json", 422,
     "invalid_request", "records: expected an array of census records, found a JSON object",
     None, "records"),
    ("records missing", json_body({}), "application/json", 422, "invalid_request",
     "records: missing", None, "records"),
    ("unknown top-level field", json_body({"records": [RECORD], "model": "x"}),
     "application/json", 422, "invalid_request", "model: unknown field", None, "model"),
    ("bare array", json_body([RECORD]), "application/json", 422, "invalid_request",
     "found a JSON array; wrap the records in an object", None, None),
    ("string body", json_body("hello"), "application/json", 422, "invalid_request",
     'found "hello" (a string)', None, None),
    ("null body", b"null", "application/json", 422, "invalid_request", "found null", None, None),
    ("malformed JSON", b'{"records": [', "application/json", 400, "malformed_json",
     "The request body is not valid JSON", None, None),
    ("empty body", b"", "application/json", 422, "invalid_request", "The request body is empty",
     None, None),
    ("text content type", json_body({"records": [RECORD]}), "text/plain", 415,
     "unsupported_media_type", "found 'text/plain'", None, None),
    ("too many records", json_body({"records": [RECORD] * (MAX_ROWS + 1)}), "application/json",
     413, "batch_too_large", f"records: expected at most {MAX_ROWS} records in one request, "
     f"found {MAX_ROWS + 1}", None, "records"),
    ("body over byte limit", b'{"records": [' + b" " * MAX_BODY_BYTES + b"]}",
     "application/json", 413, "content_too_large", f"larger than {MAX_BODY_BYTES} bytes", None,
     None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fragment", "record", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_is_rejected_plainly(
    server, body, content_type, status, code, fragment, record, field
):
    response = requests.post(
        f"{server}/predict", data=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["error"] == code
    assert fragment in payload["message"]
    assert payload["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if record is not None or field is not None:
        assert payload["errors"][0]["record"] == record
        assert payload["errors"][0]["field"] == field


def test_bad_request_without_content_type_is_415(server):
    request = requests.Request("POST", f"{server}/predict", data=json_body({"records": [RECORD]}))
    prepared = request.prepare()
    prepared.headers.pop("Content-Type", None)
    response = requests.Session().send(prepared, timeout=30)
    assert response.status_code == 415
    assert "found no Content-Type header" in response.json()["message"]


def test_chunked_body_over_limit_is_413(server):
    def chunks():
        yield b'{"records": ['
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b" " * 1000
        yield b"]}"

    response = requests.post(
        f"{server}/predict",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "content_too_large"


def test_every_invalid_field_is_listed(server):
    records = [{**RECORD, "age": 200}, RECORD, {**RECORD, "sex": 5, "race": None}]
    response = predict(server, records)
    assert response.status_code == 422
    errors = response.json()["errors"]
    # Fields are checked in the order of adult.FEATURE_COLUMNS, where race comes before sex.
    assert [(error["record"], error["field"]) for error in errors] == [
        (0, "age"),
        (2, "race"),
        (2, "sex"),
    ]
    assert "(and 2 more, listed in errors)" in response.json()["message"]


def test_error_list_is_capped(server):
    records = [{**RECORD, "age": "x", "sex": None}] * MAX_ROWS
    response = predict(server, records)
    assert response.status_code == 422
    payload = response.json()
    assert len(payload["errors"]) == 2 * MAX_ROWS
    assert "(and 9 more, listed in errors)" in payload["message"]


def test_unknown_path_and_wrong_method_are_json(server):
    missing = requests.get(f"{server}/nothing-here", timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = requests.get(f"{server}/predict", timeout=30)
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    assert "allowed: POST" in wrong.json()["message"]


def test_client_request_id_is_echoed(server):
    response = predict(server, [RECORD], headers={"X-Request-ID": "client-id.42"})
    assert response.headers["x-request-id"] == "client-id.42"
    unsafe = predict(server, [RECORD], headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_unexpected_error_is_json_500_and_logged(registry, store, caplog):
    registry.scorers["1"] = FailingScorer()
    with serving(store) as url, caplog.at_level(logging.ERROR, logger="dp_serving"):
        wait_until(lambda: store.current is not None)
        response = predict(url, [RECORD])
    assert response.status_code == 500
    payload = response.json()
    assert payload["error"] == "internal_error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id in payload["message"]
    logged = [record for record in caplog.records if request_id in record.getMessage()]
    assert logged, "the unhandled error was not logged with the request id"
    assert logged[0].exc_info is not None


# --- Readiness, metadata and reloads -----------------------------------------------------


def test_no_production_version_means_up_but_not_ready(registry, store):
    registry.production = None
    with serving(store) as url:
        wait_until(lambda: store.last_check_at is not None)
        health = requests.get(f"{url}/health", timeout=30)
        ready = requests.get(f"{url}/ready", timeout=30)
        response = predict(url, [RECORD])
        model = requests.get(f"{url}/model", timeout=30)
    assert health.status_code == 200
    assert health.json()["status"] == "up"
    assert health.json()["ready"] is False
    assert "No version of adult-income-dp is in Production" in health.json()["reason"]
    assert ready.status_code == 503
    assert response.status_code == 503
    assert response.json()["error"] == "model_not_ready"
    assert "No version of adult-income-dp is in Production" in response.json()["message"]
    assert response.headers["retry-after"]
    assert model.status_code == 503


def test_health_and_model_when_ready(server):
    health = requests.get(f"{server}/health", timeout=30).json()
    assert health["ready"] is True
    assert health["model_version"] == "1"
    assert health["reason"] is None
    assert requests.get(f"{server}/ready", timeout=30).status_code == 200
    model = requests.get(f"{server}/model", timeout=30).json()
    assert model["name"] == MODEL_NAME
    assert model["version"] == "1"
    assert model["stage"] == "Production"
    assert model["epsilon"] == pytest.approx(0.96)
    assert model["delta"] == pytest.approx(1e-5)
    assert model["accuracy"] == pytest.approx(0.846)


def test_reload_swaps_to_new_version(server, registry):
    registry.production = "2"
    response = requests.post(f"{server}/admin/reload", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "changed": True,
        "previous_version": "1",
        "version": "2",
        "message": "Now serving version 2.",
    }
    assert predict(server, [RECORD]).json()["model_version"] == "2"
    assert registry.released == ["1"]
    again = requests.post(f"{server}/admin/reload", timeout=30).json()
    assert again["changed"] is False


def test_request_in_flight_keeps_its_model(registry, store, pyfunc_model):
    gated = GatedScorer(scorer_for(pyfunc_model))
    registry.scorers["1"] = gated
    with serving(store) as url:
        wait_until(lambda: store.current is not None)
        gated.entered.clear()
        results = {}
        in_flight = threading.Thread(
            target=lambda: results.setdefault("response", predict(url, [RECORD]))
        )
        in_flight.start()
        assert gated.entered.wait(20), "the request never reached the scorer"
        registry.production = "2"
        outcome = store.refresh()
        assert outcome.version == "2"
        after_swap = predict(url, [RECORD])
        gated.gate.set()
        in_flight.join(20)
    assert results["response"].status_code == 200
    assert results["response"].json()["model_version"] == "1"
    assert after_swap.status_code == 200
    assert after_swap.json()["model_version"] == "2"


def test_failed_load_keeps_serving_old_version(server, registry):
    registry.production = "2"
    registry.broken_versions.add("2")
    response = requests.post(f"{server}/admin/reload", timeout=30)
    assert response.status_code == 502
    assert "version 2 failed: download of version 2 failed" in response.json()["message"]
    assert predict(server, [RECORD]).json()["model_version"] == "1"
    health = requests.get(f"{server}/health", timeout=30).json()
    assert health["ready"] is True
    assert "version 2 failed" in health["last_error"]
    registry.broken_versions.clear()
    assert requests.post(f"{server}/admin/reload", timeout=30).json()["version"] == "2"
    assert requests.get(f"{server}/health", timeout=30).json()["last_error"] is None


def test_registry_error_keeps_serving(server, registry):
    registry.registry_error = "connection refused"
    response = requests.post(f"{server}/admin/reload", timeout=30)
    assert response.status_code == 502
    assert response.json()["error"] == "registry_error"
    assert "Checking the registry failed: connection refused" in response.json()["message"]
    assert predict(server, [RECORD]).status_code == 200


def test_production_removed_stops_serving(server, registry):
    registry.production = None
    response = requests.post(f"{server}/admin/reload", timeout=30)
    assert response.status_code == 200
    assert response.json()["version"] is None
    assert response.json()["changed"] is True
    assert predict(server, [RECORD]).status_code == 503


def test_poll_picks_up_new_version(registry):
    store = ModelStore(registry, poll_seconds=0.1)
    with serving(store) as url:
        wait_until(lambda: store.current is not None)
        registry.production = "3"
        wait_until(lambda: store.current.version == "3", message="version 3 served")
        assert predict(url, [RECORD]).json()["model_version"] == "3"


# --- Authentication and OpenAPI ----------------------------------------------------------


def test_token_is_required_when_set(store):
    with serving(store, token=TOKEN) as url:
        wait_until(lambda: store.current is not None)
        missing = predict(url, [RECORD])
        wrong = predict(url, [RECORD], headers={"Authorization": "Bearer not-the-token"})
        right = predict(url, [RECORD], headers={"Authorization": f"Bearer {TOKEN}"})
        model = requests.get(f"{url}/model", timeout=30)
        reload = requests.post(f"{url}/admin/reload", timeout=30)
        health = requests.get(f"{url}/health", timeout=30)
        schema = requests.get(f"{url}/openapi.json", timeout=30).json()
        invalid_without_token = predict(url, [])
        malformed_without_token = requests.post(
            f"{url}/predict", data=b"{", headers={"Content-Type": "application/json"}, timeout=30
        )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer <token>" in missing.json()["message"]
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Invalid bearer token."
    assert right.status_code == 200
    assert model.status_code == 401
    assert reload.status_code == 401
    assert health.status_code == 200
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    # Only the JSON syntax is checked before the token; validation comes after it.
    assert invalid_without_token.status_code == 401
    assert malformed_without_token.status_code == 400


def test_openapi_describes_census_record(server):
    schema = requests.get(f"{server}/openapi.json", timeout=30).json()
    record = schema["components"]["schemas"]["CensusRecord"]
    assert list(record["properties"]) == list(adult.FEATURE_COLUMNS)
    assert record["required"] == list(adult.FEATURE_COLUMNS)
    assert record["additionalProperties"] is False
    for column, (low, high) in adult.VALID_RANGES.items():
        assert record["properties"][column]["type"] == "integer"
        assert record["properties"][column]["minimum"] == low
        assert record["properties"][column]["maximum"] == high
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["records"]["maxItems"] == MAX_ROWS
    assert request["properties"]["records"]["minItems"] == 1
    responses = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(responses)

"""Parts of the model server without HTTP: settings, scoring and the registry lookup."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import mlflow.pyfunc
import pandas as pd
import pytest
import tensorflow as tf
from mlflow.exceptions import MlflowException, RestException

from dp_pipeline import adult
from dp_pipeline.config import ConfigurationError
from dp_pipeline.features import AdultEncoder
from dp_pipeline.pyfunc_model import IncomeClassifier
from dp_serving import model_store, schemas
from dp_serving.model_store import ModelStore
from dp_serving.scoring import (
    KerasScorer,
    PyfuncScorer,
    parse_unknown_categories,
    scorer_for,
    unknown_categories,
)
from dp_serving.settings import BODY_BYTES_PER_ROW, Settings
from dp_serving.tracking import RegistryError, RegistrySource

# --- Settings ----------------------------------------------------------------------------


def test_settings_defaults():
    settings = Settings.from_environment({})
    assert settings.model_name == "adult-income-dp"
    assert settings.poll_seconds == 10.0
    assert settings.max_batch_rows == 10_000
    assert settings.body_limit_bytes == 10_000 * BODY_BYTES_PER_ROW
    assert settings.token == ""
    assert settings.port == 8000


def test_settings_read_environment():
    settings = Settings.from_environment(
        {
            "DP_PIPELINE_MODEL_NAME": "other-model",
            "DP_SERVING_POLL_SECONDS": "2.5",
            "DP_SERVING_MAX_BATCH_ROWS": "50",
            "DP_SERVING_MAX_BODY_BYTES": "4096",
            "DP_SERVING_TOKEN": "abc",
            "DP_SERVING_LOG_LEVEL": "debug",
            "DP_SERVING_ACCESS_LOG": "true",
            "DP_SERVING_PORT": "9123",
        }
    )
    assert settings.model_name == "other-model"
    assert settings.poll_seconds == 2.5
    assert settings.max_batch_rows == 50
    assert settings.body_limit_bytes == 4096
    assert settings.token == "abc"
    assert settings.log_level == "DEBUG"
    assert settings.access_log is True
    assert settings.port == 9123


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DP_SERVING_POLL_SECONDS", "-1"),
        ("DP_SERVING_POLL_SECONDS", "nan"),
        ("DP_SERVING_POLL_SECONDS", "soon"),
        ("DP_SERVING_MAX_BATCH_ROWS", "0"),
        ("DP_SERVING_PORT", "70000"),
        ("DP_SERVING_LOG_LEVEL", "LOUD"),
        ("DP_SERVING_ACCESS_LOG", "maybe"),
    ],
)
def test_settings_reject_invalid_value(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environment({name: value})


# --- Scoring -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyfunc_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pyfunc")
    encoder = AdultEncoder()
    tf.keras.utils.set_random_seed(11)
    keras_model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(len(encoder.feature_names),)),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    keras_model.save(folder / "model.keras")
    (folder / "encoder.json").write_text(encoder.to_json(), encoding="utf-8")
    mlflow.pyfunc.save_model(
        str(folder / "pyfunc"),
        python_model=IncomeClassifier(),
        artifacts={
            "keras_model": str(folder / "model.keras"),
            "encoder": str(folder / "encoder.json"),
        },
        pip_requirements=[],
    )
    return mlflow.pyfunc.load_model(str(folder / "pyfunc"))


def columns_of(records: list[dict]) -> dict[str, list]:
    return {column: [record[column] for record in records] for column in adult.FEATURE_COLUMNS}


RECORDS = [
    schemas.EXAMPLE_RECORD,
    {**schemas.EXAMPLE_RECORD, "age": 62, "capital-gain": 99_999, "native-country": "Atlantis"},
    {**schemas.EXAMPLE_RECORD, "workclass": "?", "occupation": "?", "hours-per-week": 1},
    {**schemas.EXAMPLE_RECORD, "sex": "female", "race": "White ", "education-num": 16},
]


def test_scorer_for_income_classifier_is_keras(pyfunc_model):
    assert isinstance(scorer_for(pyfunc_model), KerasScorer)


def test_keras_and_pyfunc_scorers_match_predict(pyfunc_model):
    expected = pyfunc_model.predict(pd.DataFrame(RECORDS))
    for scorer in (scorer_for(pyfunc_model), PyfuncScorer(pyfunc_model)):
        scores = scorer.score(columns_of(RECORDS))
        assert scores.probabilities == pytest.approx(list(expected["probability"]), abs=1e-6)
        assert scores.labels == list(expected["label"])
        assert scores.unknown_categories == [
            parse_unknown_categories(text) for text in expected["unknown_categories"]
        ]


def test_unknown_categories_ignores_missing_marker():
    found = unknown_categories(columns_of(RECORDS), adult.CATEGORIES)
    assert found == [
        {},
        {"native-country": "Atlantis"},
        {},
        {"race": "White ", "sex": "female"},
    ]


def test_parse_unknown_categories():
    assert parse_unknown_categories("") == {}
    assert parse_unknown_categories("sex=female;race=White ") == {"sex": "female", "race": "White "}
    assert parse_unknown_categories("native-country=a=b") == {"native-country": "a=b"}


def test_validation_errors_are_capped_at_50():
    from fastapi.exceptions import RequestValidationError
    from starlette.requests import Request

    from dp_serving.errors import MAX_LISTED_ERRORS, validation_error_response

    errors = [
        {"type": "int_type", "loc": ("body", "records", index, "age"), "input": "x", "msg": ""}
        for index in range(120)
    ]
    request = Request({"type": "http", "method": "POST", "path": "/predict", "headers": []})
    response = validation_error_response(request, RequestValidationError(errors), max_rows=200)
    body = json.loads(response.body)
    assert response.status_code == 422
    assert len(body["errors"]) == MAX_LISTED_ERRORS
    assert body["errors"][-1]["record"] == MAX_LISTED_ERRORS - 1
    assert "(and 119 more, the first 50 listed in errors)" in body["message"]


# --- Registry lookup ---------------------------------------------------------------------


def version(number: str, stage: str = "Production", aliases=("production",), tags=None):
    return SimpleNamespace(
        version=number,
        current_stage=stage,
        aliases=list(aliases),
        run_id="run-1",
        source=f"models:/m-{number}",
        tags=tags if tags is not None else {"epsilon": "0.9", "delta": "1e-05"},
        creation_timestamp=1_700_000_000_000,
    )


class FakeClient:
    """The few MlflowClient methods that RegistrySource calls."""

    tracking_uri = "http://127.0.0.1:1"

    def __init__(self, alias=None, stage=(), alias_error=None, stage_error=None, metrics=None):
        self.alias, self.stage = alias, list(stage)
        self.alias_error, self.stage_error = alias_error, stage_error
        self.metrics = metrics or {}

    def get_model_version_by_alias(self, name, alias):
        if self.alias_error:
            raise self.alias_error
        if self.alias is None:
            raise RestException(
                {"error_code": "INVALID_PARAMETER_VALUE", "message": f"alias {alias} not found"}
            )
        return self.alias

    def get_latest_versions(self, name, stages):
        if self.stage_error:
            raise self.stage_error
        return self.stage

    def get_run(self, run_id):
        return SimpleNamespace(
            data=SimpleNamespace(metrics=self.metrics),
            info=SimpleNamespace(start_time=1_699_999_000_000),
        )


def source_with(tmp_path, **client_options) -> RegistrySource:
    return RegistrySource("adult-income-dp", tmp_path, client=FakeClient(**client_options))


def test_production_found_by_alias(tmp_path):
    found = source_with(tmp_path, alias=version("4"), stage=[version("3")]).find_production()
    assert found.version == "4"
    assert found.resolved_by == "alias"


def test_production_falls_back_to_stage(tmp_path):
    found = source_with(tmp_path, stage=[version("3", aliases=())]).find_production()
    assert found.version == "3"
    assert found.resolved_by == "stage"


def test_no_production_is_none(tmp_path):
    assert source_with(tmp_path).find_production() is None
    missing_model = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"})
    source = source_with(tmp_path, alias_error=missing_model, stage_error=missing_model)
    assert source.find_production() is None


def test_registry_failure_is_registry_error(tmp_path):
    source = source_with(tmp_path, alias_error=MlflowException("connection refused"))
    with pytest.raises(RegistryError, match="connection refused"):
        source.find_production()


def test_model_info_prefers_tags_then_run_metrics(tmp_path):
    metrics = {"test_accuracy": 0.85, "test_roc_auc": 0.9, "epsilon": 1.5, "delta": 1e-5}
    source = source_with(tmp_path, metrics=metrics)
    tagged = source._describe(source_with(tmp_path, alias=version("4")).find_production())
    assert tagged.epsilon == 0.9
    assert tagged.accuracy == 0.85
    assert tagged.roc_auc == 0.9
    assert tagged.training_date.year == 2023
    untagged = version("5", tags={"epsilon": "not a number"})
    info = source._describe(source_with(tmp_path, alias=untagged).find_production())
    assert info.epsilon == 1.5
    assert info.delta == 1e-5


# --- Failure logging ---------------------------------------------------------------------


class BrokenSource:
    model_name = "adult-income-dp"

    def find_production(self):
        raise RegistryError("connection refused")


def test_repeated_registry_failure_is_logged_once_per_interval(caplog):
    store = ModelStore(BrokenSource(), poll_seconds=0)
    with caplog.at_level(logging.ERROR, logger="dp_serving.model_store"):
        for _ in range(model_store.REPEATED_FAILURE_LOG_INTERVAL):
            store.refresh()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "Checking the registry failed" in messages[0]
    assert f"({model_store.REPEATED_FAILURE_LOG_INTERVAL} checks in a row)" in messages[1]
    assert store.not_ready_reason.startswith("Checking the registry failed")

"""Request and response bodies of the model server, which FastAPI also publishes as OpenAPI.

A census record has exactly the 14 feature fields of adult.names, with the hyphenated names
used there. Numbers must be JSON integers within dp_pipeline.adult.VALID_RANGES, because
the model was trained on integer census codes. As in JSON Schema, 39.0 is an integer; 39.5,
"39" and true are rejected.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from dp_pipeline import adult

MAX_CATEGORY_LENGTH = 100

EXAMPLE_RECORD: dict[str, Any] = {
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


def attribute_name(column: str) -> str:
    """Return the Python attribute of a census column: ``education-num`` is ``education_num``."""
    return column.replace("-", "_")


def expected_value(column: str) -> str:
    """Describe the values that ``column`` accepts, for error messages."""
    if column in adult.VALID_RANGES:
        low, high = adult.VALID_RANGES[column]
        return f"an integer from {low} to {high}"
    return (
        f"a string of 1 to {MAX_CATEGORY_LENGTH} characters: a value listed in adult.names, "
        'or "?" for a missing value'
    )


def _integral_float_to_int(value: Any) -> Any:
    """Turn 39.0 into 39, because JSON Schema's integer type includes such numbers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _record_field(column: str):
    if column in adult.VALID_RANGES:
        low, high = adult.VALID_RANGES[column]
        # The validator wraps the constrained integer, so the schema keeps minimum and maximum.
        annotation = Annotated[
            int,
            Field(strict=True, ge=low, le=high),
            BeforeValidator(_integral_float_to_int),
        ]
        description = f"Integer from {low} to {high}."
    else:
        annotation = Annotated[
            str, Field(strict=True, min_length=1, max_length=MAX_CATEGORY_LENGTH)
        ]
        description = (
            f"One of the {len(adult.CATEGORIES[column])} values that adult.names lists, or "
            '"?" for a missing value. Another string is accepted: the model encodes it like '
            "a missing value, and the prediction lists it in unknown_categories."
        )
    field = Field(
        alias=column,
        description=description,
        examples=[EXAMPLE_RECORD[column]],
    )
    return (annotation, field)


class _RecordBase(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=False,
        json_schema_extra={"examples": [EXAMPLE_RECORD]},
    )


CensusRecord = create_model(
    "CensusRecord",
    __base__=_RecordBase,
    __doc__="One person's raw census fields, as in adult.data without the income column.",
    **{attribute_name(column): _record_field(column) for column in adult.FEATURE_COLUMNS},
)


class PredictRequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def columns(self) -> dict[str, list]:
        """Return the records column by column, keyed by the census column names."""
        records = self.records
        return {
            column: [getattr(record, attribute_name(column)) for record in records]
            for column in adult.FEATURE_COLUMNS
        }


@functools.cache
def predict_request_model(max_rows: int) -> type[PredictRequestBase]:
    """Build the POST /predict body model, whose ``records`` has 1 to ``max_rows`` records."""
    records = Annotated[
        list[CensusRecord],
        Field(
            min_length=1,
            max_length=max_rows,
            description=f"1 to {max_rows} census records.",
        ),
    ]
    return create_model(
        "PredictRequest",
        __base__=PredictRequestBase,
        __doc__="A batch of census records to score.",
        records=(records, ...),
    )


class Prediction(BaseModel):
    """The model's output for one record, in the order of the request."""

    probability: float = Field(
        ge=0.0, le=1.0, description="Probability that the person's income is above $50K."
    )
    label: Literal[">50K", "<=50K"] = Field(
        description='">50K" when probability >= 0.5, else "<=50K".'
    )
    unknown_categories: dict[str, str] = Field(
        description="Fields whose value adult.names does not list, mapped to that value. The "
        "model encodes such a value like a missing one. Empty when every value is known.",
    )


class PredictResponse(BaseModel):
    """Predictions of one model version for every record of the request."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str = Field(description="Registry version that computed every prediction.")
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    """The served model version with its privacy guarantee and test metrics."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    stage: str = Field(description="Registry stage of the version, normally Production.")
    aliases: list[str]
    resolved_by: Literal["alias", "stage"] = Field(
        description='"alias" when the production alias named the version, "stage" when no '
        "alias exists and the latest version in the Production stage was taken."
    )
    run_id: str | None = Field(description="MLflow run that logged the model.")
    source: str = Field(description="URI of the model files that the version points to.")
    epsilon: float | None = Field(
        description="Epsilon of the (epsilon, delta) differential privacy guarantee."
    )
    delta: float | None = Field(description="Delta of the differential privacy guarantee.")
    accuracy: float | None = Field(description="Accuracy on adult.test.")
    roc_auc: float | None = Field(description="ROC AUC on adult.test.")
    training_date: datetime | None = Field(
        description="Start of the MLflow run. The DAG's register task starts that run right "
        "after training, in the same DAG run."
    )
    registered_at: datetime | None = Field(description="When the version was registered.")
    loaded_at: datetime = Field(description="When this server finished loading the version.")


class HealthResponse(BaseModel):
    """Liveness and readiness of the server."""

    model_config = ConfigDict(protected_namespaces=())

    status: Literal["up"] = Field(description="Always up: the process serves HTTP.")
    ready: bool = Field(description="True when a model is loaded and /predict can answer.")
    model_name: str
    model_version: str | None = Field(description="Version that /predict uses, if any.")
    reason: str | None = Field(description="Why the server is not ready; null when ready.")
    loading_version: str | None = Field(description="Version being loaded right now, if any.")
    last_check_at: datetime | None = Field(description="Last check of the registry.")
    last_error: str | None = Field(
        description="Error of the last registry check or model load, if it failed; the "
        "server keeps serving the loaded version meanwhile."
    )


class ReloadResponse(BaseModel):
    """Outcome of a registry check that POST /admin/reload requested."""

    changed: bool = Field(description="True when the served version changed.")
    previous_version: str | None
    version: str | None = Field(description="Version served after the check.")
    message: str


class FieldError(BaseModel):
    """One invalid part of a request."""

    record: int | None = Field(description="Index of the record in records, if any.")
    field: str | None = Field(description="Name of the invalid field, if any.")
    message: str


class ErrorResponse(BaseModel):
    """Body of every 4xx and 5xx response."""

    error: str = Field(description="Stable error code, for example invalid_request.")
    message: str = Field(description="What was wrong and what to send instead.")
    errors: list[FieldError] = Field(
        default_factory=list, description="Each invalid field, at most 50."
    )
    request_id: str | None = Field(default=None, description="Also in the X-Request-ID header.")

"""The FastAPI application: predict, model metadata, health and reload endpoints."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the module
# globals, and the request body class is built per application inside create_app.
import contextlib
import hmac
import logging
import math
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dp_serving import schemas
from dp_serving.context import BodyLimitMiddleware, RequestContextMiddleware
from dp_serving.errors import ServingError, install_error_handlers
from dp_serving.model_store import ModelStore
from dp_serving.settings import Settings
from dp_serving.tracking import ServedModel

logger = logging.getLogger(__name__)

DESCRIPTION = """
Serves the Production version of the differentially private Adult income classifier from
the MLflow model registry, and follows the registry when a new version is promoted.

`POST /predict` takes raw census records with the 14 fields of adult.names and returns, per
record, the probability that income is above $50K, the label and any category value that
adult.names does not list. Errors are JSON objects with a code, a message that names the
field and record, and the list of every invalid field.
"""


def _error_responses(*statuses: int) -> dict:
    descriptions = {
        400: "The body is not valid JSON.",
        401: "The bearer token is missing or wrong.",
        413: "Too many records, or the body is larger than the limit.",
        415: "The body is not sent as application/json.",
        422: "A record or field is invalid; the message names it.",
        502: "The registry could not be checked or the new version failed to load.",
        503: "No model version is loaded.",
    }
    return {
        status: {"model": schemas.ErrorResponse, "description": descriptions[status]}
        for status in statuses
    }


def _bearer_dependency(token: str):
    """Return the dependency that checks ``Authorization: Bearer <token>``."""
    scheme = HTTPBearer(
        auto_error=False,
        description="The token in the server's DP_SERVING_TOKEN environment variable.",
    )
    expected = token.encode()

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ):
        if credentials is None:
            raise ServingError(
                401,
                "Missing bearer token; send the header 'Authorization: Bearer <token>' with "
                "the token set in the server's DP_SERVING_TOKEN.",
                code="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise ServingError(
                401,
                "Invalid bearer token.",
                code="unauthorized",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    return require_token


def create_app(settings: Settings, store: ModelStore) -> FastAPI:
    """Build the application around ``store``, whose poll runs while the app is up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        logger.info(
            "Model server for %s starting: registry check every %s s, at most %d records "
            "and %d bytes per request, bearer token %s",
            settings.model_name,
            settings.poll_seconds or "never (start and /admin/reload only)",
            settings.max_batch_rows,
            settings.body_limit_bytes,
            "required" if settings.token else "not required",
        )
        store.start()
        yield
        store.stop()
        logger.info("Model server for %s stopped", settings.model_name)

    app = FastAPI(
        title="Adult income classifier",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
    )
    # The last middleware added runs first, so every response, a 413 too, gets a request id.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.body_limit_bytes)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app, settings.max_batch_rows)
    protected = [Depends(_bearer_dependency(settings.token))] if settings.token else []
    auth_errors = (401,) if settings.token else ()
    retry_after = str(max(1, math.ceil(settings.poll_seconds))) if settings.poll_seconds else "10"

    def require_model() -> ServedModel:
        served = store.current
        if served is None:
            raise ServingError(
                503,
                store.not_ready_reason or "No model is loaded.",
                code="model_not_ready",
                headers={"Retry-After": retry_after},
            )
        return served

    PredictRequest = schemas.predict_request_model(settings.max_batch_rows)

    @app.post(
        "/predict",
        response_model=schemas.PredictResponse,
        summary="Score census records",
        dependencies=protected,
        responses=_error_responses(*auth_errors, 400, 413, 415, 422, 503),
    )
    def predict(body: PredictRequest) -> schemas.PredictResponse:
        # Read the model once: the whole request uses this version even if a swap follows.
        served = require_model()
        scores = served.scorer.score(body.columns())
        predictions = [
            schemas.Prediction(probability=probability, label=label, unknown_categories=unknown)
            for probability, label, unknown in zip(
                scores.probabilities, scores.labels, scores.unknown_categories, strict=True
            )
        ]
        return schemas.PredictResponse(
            model_name=served.info.name,
            model_version=served.version,
            predictions=predictions,
        )

    @app.get(
        "/model",
        response_model=schemas.ModelInfo,
        summary="Describe the served model version",
        dependencies=protected,
        responses=_error_responses(*auth_errors, 503),
    )
    def model() -> schemas.ModelInfo:
        return require_model().info

    def health_body() -> schemas.HealthResponse:
        served = store.current
        return schemas.HealthResponse(
            status="up",
            ready=served is not None,
            model_name=settings.model_name,
            model_version=served.version if served else None,
            reason=store.not_ready_reason,
            loading_version=store.loading_version,
            last_check_at=store.last_check_at,
            last_error=store.last_error,
        )

    @app.get(
        "/health",
        response_model=schemas.HealthResponse,
        summary="Liveness: 200 while the process runs, with readiness in the body",
    )
    def health() -> schemas.HealthResponse:
        return health_body()

    @app.get(
        "/ready",
        response_model=schemas.HealthResponse,
        summary="Readiness: 200 when a model is loaded, else 503",
        responses={503: {"model": schemas.HealthResponse, "description": "No model loaded."}},
    )
    def ready():
        body = health_body()
        if body.ready:
            return body
        return JSONResponse(body.model_dump(mode="json"), status_code=503)

    @app.post(
        "/admin/reload",
        response_model=schemas.ReloadResponse,
        summary="Check the registry now and load a new Production version",
        dependencies=protected,
        responses=_error_responses(*auth_errors, 502),
    )
    def reload() -> schemas.ReloadResponse:
        outcome = store.refresh()
        if outcome.error is not None:
            raise ServingError(502, outcome.message, code="registry_error")
        return schemas.ReloadResponse(
            changed=outcome.changed,
            previous_version=outcome.previous_version,
            version=outcome.version,
            message=outcome.message,
        )

    return app

"""Plain JSON error responses in place of FastAPI's defaults.

Every error body is an ErrorResponse: a stable code, one message that names the field, the
record index and the expected value, and the list of every invalid field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dp_pipeline import adult
from dp_serving import schemas
from dp_serving.context import current_request_id

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 50
MAX_SHOWN_VALUE_CHARACTERS = 60
RECORD_VALUE_ERRORS = {
    "int_type",
    "string_type",
    "greater_than_equal",
    "less_than_equal",
    "string_too_short",
    "string_too_long",
    "int_parsing",
    "missing",
}
OBJECT_ERRORS = {"model_type", "model_attributes_type", "dict_type"}

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    502: "registry_error",
    503: "model_not_ready",
}


class ServingError(HTTPException):
    """An HTTP error whose message and code the client sees as they are."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code or ERROR_CODES.get(status_code, "error")


def error_response(
    status_code: int,
    code: str,
    message: str,
    errors: Sequence[schemas.FieldError] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = schemas.ErrorResponse(
        error=code,
        message=message,
        errors=list(errors)[:MAX_LISTED_ERRORS],
        request_id=current_request_id(),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def show_value(value: Any) -> str:
    """Describe a JSON value briefly, with its JSON type, for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, bytes | bytearray):
        return "a non-JSON body"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_SHOWN_VALUE_CHARACTERS:
        text = text[: MAX_SHOWN_VALUE_CHARACTERS - 3] + "..."
    kind = "a string" if isinstance(value, str) else "a number"
    return f"{text} ({kind})"


def _field_error(error: dict, max_rows: int) -> tuple[int, str, schemas.FieldError]:
    """Translate one pydantic error of the request body into a status and a message."""
    location = tuple(error.get("loc", ()))
    if location and location[0] == "body":
        location = location[1:]
    kind = error.get("type", "")
    value = error.get("input")

    if kind == "json_invalid":
        position = f" at character {location[0]}" if location else ""
        reason = error.get("ctx", {}).get("error", "invalid JSON")
        message = f"The request body is not valid JSON: {reason}{position}."
        return 400, "malformed_json", schemas.FieldError(record=None, field=None, message=message)

    if not location:
        if kind == "missing":
            message = 'The request body is empty; expected a JSON object {"records": [...]}.'
        elif isinstance(value, list):
            message = (
                'Expected a JSON object {"records": [...]}, found a JSON array; wrap the '
                'records in an object under the key "records".'
            )
        else:
            message = f'Expected a JSON object {{"records": [...]}}, found {show_value(value)}.'
        return 422, "invalid_request", schemas.FieldError(record=None, field=None, message=message)

    if location[0] != "records":
        name = str(location[0])
        message = f'{name}: unknown field; the request body has only the field "records".'
        return 422, "invalid_request", schemas.FieldError(record=None, field=name, message=message)

    if len(location) == 1:
        return _records_error(kind, value, error, max_rows)

    index = location[1] if isinstance(location[1], int) else None
    if len(location) == 2:
        message = f"records[{index}]: expected a JSON object of census fields, found "
        message += f"{show_value(value)}."
        return 422, "invalid_request", schemas.FieldError(record=index, field=None, message=message)

    column = str(location[2])
    prefix = f"records[{index}].{column}"
    if kind == "extra_forbidden":
        message = (
            f"{prefix}: unknown field; a record has only the fields "
            f"{', '.join(adult.FEATURE_COLUMNS)}."
        )
    elif kind == "missing":
        message = f"{prefix}: missing; expected {schemas.expected_value(column)}."
    elif kind in RECORD_VALUE_ERRORS and column in adult.FEATURE_COLUMNS:
        message = f"{prefix}: expected {schemas.expected_value(column)}, found {show_value(value)}."
    else:
        message = f"{prefix}: {error.get('msg', 'invalid value')}, found {show_value(value)}."
    return 422, "invalid_request", schemas.FieldError(record=index, field=column, message=message)


def _records_error(kind: str, value: Any, error: dict, max_rows: int):
    if kind == "too_long":
        found = error.get("ctx", {}).get("actual_length")
        found_text = f"found {found}" if found is not None else "found more"
        message = (
            f"records: expected at most {max_rows} records in one request, {found_text}; "
            "split the batch into smaller requests."
        )
        return (
            413,
            "batch_too_large",
            schemas.FieldError(record=None, field="records", message=message),
        )
    if kind == "too_short":
        message = "records: expected at least 1 record, found an empty array."
    elif kind == "missing":
        message = f"records: missing; expected an array of 1 to {max_rows} census records."
    else:
        message = f"records: expected an array of census records, found {show_value(value)}."
    return 422, "invalid_request", schemas.FieldError(record=None, field="records", message=message)


def validation_error_response(
    request: Request, exc: RequestValidationError, max_rows: int
) -> JSONResponse:
    errors = list(exc.errors())
    content_type = request.headers.get("content-type")
    if any(isinstance(error.get("input"), bytes | bytearray) for error in errors):
        # FastAPI passes the raw bytes on when the Content-Type is not JSON.
        found = f"found {content_type!r}" if content_type else "found no Content-Type header"
        message = f"Expected a JSON body with Content-Type application/json, {found}."
        logger.info("Rejected request %s: %s", current_request_id(), message)
        return error_response(415, "unsupported_media_type", message)

    # Only the listed errors are translated: a batch of 10,000 bad records has 140,000.
    translated = [_field_error(error, max_rows) for error in errors[:MAX_LISTED_ERRORS]]
    status = max(status for status, _, _ in translated)
    code = next(code for candidate, code, _ in translated if candidate == status)
    field_errors = [field_error for _, _, field_error in translated]
    message = field_errors[0].message
    if len(errors) > 1:
        listed = "listed in errors"
        if len(errors) > MAX_LISTED_ERRORS:
            listed = f"the first {MAX_LISTED_ERRORS} listed in errors"
        message = f"{message.rstrip('.')} (and {len(errors) - 1} more, {listed})."
    logger.info(
        "Rejected request %s with %d: %d invalid fields, first: %s",
        current_request_id(),
        status,
        len(errors),
        field_errors[0].message,
    )
    return error_response(status, code, message, field_errors)


def http_error_response(request: Request, exc: HTTPException) -> JSONResponse:
    status = exc.status_code
    if isinstance(exc, ServingError):
        code, message = exc.code, str(exc.detail)
    elif status == 404:
        code = "not_found"
        message = f"No endpoint at {request.url.path}; GET /docs lists the endpoints."
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        code = "method_not_allowed"
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}."
    elif status == 413:
        code = "content_too_large"
        message = str(exc.detail)
    else:
        code = ERROR_CODES.get(status, "error")
        message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    if status >= 500:
        logger.warning("Request %s failed with %d: %s", current_request_id(), status, message)
    else:
        logger.info("Rejected request %s with %d: %s", current_request_id(), status, message)
    return error_response(status, code, message, headers=exc.headers)


def install_error_handlers(app: FastAPI, max_rows: int) -> None:
    """Replace FastAPI's validation and HTTP error handlers with the plain JSON ones."""

    async def on_validation_error(request: Request, exc: RequestValidationError):
        return validation_error_response(request, exc, max_rows)

    async def on_http_error(request: Request, exc: HTTPException):
        return http_error_response(request, exc)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)

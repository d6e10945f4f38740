"""ASGI middleware: request ids, the request body limit, and a JSON 500 for unexpected errors."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid

from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
# A client's own id is reused only when it is short and printable, because it goes to logs.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dp_serving_request_id", default=None
)


def current_request_id() -> str | None:
    """Return the id of the request being handled in this context, if any."""
    return _request_id.get()


class RequestContextMiddleware:
    """ASGI middleware that gives each request an id and turns unhandled errors into a 500.

    The id is the client's X-Request-ID when that is a safe token, else a new UUID, and goes
    back in the response's X-Request-ID header. An exception that no handler took is logged
    with the id and traceback, and the client gets a JSON 500 without the traceback.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _client_request_id(scope) or uuid.uuid4().hex
        token = _request_id.set(request_id)
        response_started = False

        async def send_with_id(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "Unhandled error in request %s (%s %s)",
                request_id,
                scope.get("method"),
                scope.get("path"),
            )
            if response_started:
                # The status line is gone already; closing the connection is all that is left.
                raise
            await _send_internal_error(send_with_id, request_id)
        finally:
            _request_id.reset(token)


def _client_request_id(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _CLIENT_REQUEST_ID.fullmatch(text) else None
    return None


async def _send_json_error(send, status: int, code: str, message: str) -> None:
    """Send an ErrorResponse body from middleware, outside FastAPI's exception handlers."""
    request_id = current_request_id()
    body = json.dumps(
        {"error": code, "message": message, "errors": [], "request_id": request_id},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_internal_error(send, request_id: str) -> None:
    message = (
        "The server failed to handle the request; the log has the details under request id "
        f"{request_id}."
    )
    await _send_json_error(send, 500, "internal_error", message)


class BodyTooLargeError(HTTPException):
    """The request body grew past the limit while it was being read.

    An HTTPException, because FastAPI passes those on from reading the body unchanged and
    turns any other error there into a 400.
    """

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


class BodyLimitMiddleware:
    """ASGI middleware that rejects a request body larger than ``max_bytes`` with a JSON 413.

    A declared Content-Length over the limit is rejected before the body is read. A chunked
    body without Content-Length is counted while it arrives, and reading stops at the limit.
    The error handlers turn the resulting BodyTooLargeError into the same 413.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def message(self) -> str:
        return (
            f"The request body is larger than {self.max_bytes} bytes "
            "(DP_SERVING_MAX_BODY_BYTES); split the batch into smaller requests."
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            logger.info("Rejected request %s with 413: %s", current_request_id(), self.message())
            await _send_json_error(send, 413, "content_too_large", self.message())
            return
        received = 0

        async def receive_with_limit():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.message())
            return message

        await self.app(scope, receive_with_limit, send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

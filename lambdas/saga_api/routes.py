"""The API's routes on Powertools' REST resolver, three per saga type (`POST /<path>`, `GET /<path>/<id>`,
`GET /<path>?status=`); every domain exception becomes its HTTP answer in `_answer_error`, the one place that knows
status codes. No environment is read here (handlers.py wires the real dependencies)."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit

from saga_api.admission import StartRefused
from saga_api.errors import (
    ApiError,
    FieldProblem,
    InvalidBody,
    InvalidParameter,
    MalformedBody,
    RequestTooLarge,
    SagaNotFound,
    UnsupportedMediaType,
    quoted,
)
from saga_api.observability import logger, metrics
from saga_api.service import IDEMPOTENCY_KEY_HEADER, Route, SagaFrontDoor
from saga_records.starter import SagaConflict, SagaStartDeferred

JSON = "application/json"
RETRY_AFTER_SECONDS = 1  # StartExecution throttling refills within a second
STATUS_CODES: dict[type[Exception], int] = {
    MalformedBody: 400,
    InvalidParameter: 400,
    SagaNotFound: 404,
    SagaConflict: 409,
    RequestTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidBody: 422,
    StartRefused: 429,
    SagaStartDeferred: 503,
}
# An error body never grows with the request: at most this many problems, each field name and text cut short.
MAX_PROBLEMS = 10
MAX_FIELD_CHARS = 100
MAX_TEXT_CHARS = 300


def build_resolver(front_door: SagaFrontDoor) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()
    for route in front_door.routes:
        _add_routes(app, front_door, route)

    @app.exception_handler([ApiError, SagaConflict, SagaStartDeferred, StartRefused])
    def _answer_error(error: Exception) -> Response:
        status = STATUS_CODES[type(error)]
        metrics.add_metric(name=f"Http{status}", unit=MetricUnit.Count, value=1)
        if isinstance(error, ApiError):
            body = error_body(error)
        elif isinstance(error, StartRefused):
            logger.info("saga start refused", extra={"saga_type": error.saga_type, "reason": error.reason})
            body = {
                "message": f"too many {error.saga_type} sagas at once: retry after {error.retry_after_seconds} s",
                "reason": error.reason,  # rate | backlog
                "errors": [{"field": "saga_type", "problem": error.detail}],
            }
            return _json(status, body, headers={"Retry-After": str(error.retry_after_seconds)})
        elif isinstance(error, SagaConflict):
            body = {
                "message": "this idempotency key was used with a different body",
                "errors": [{"field": "body", "problem": str(error)}],
            }
        else:
            logger.warning("saga start deferred", extra={"reason": getattr(error, "reason", "")})
            body = {"message": "the saga is recorded but could not be started yet: retry with the same key"}
            return _json(status, body, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return _json(status, body)

    return app


def _add_routes(app: APIGatewayRestResolver, front_door: SagaFrontDoor, route: Route) -> None:
    @app.post(f"/{route.path}")
    def start() -> Response:
        event = app.current_event
        headers = {name.lower(): value for name, value in (event.headers or {}).items()}
        check_media_type(headers)
        started = front_door.start(route, _body_bytes(event), headers.get(IDEMPOTENCY_KEY_HEADER.lower()))
        metrics.add_metric(name="SagaStartAccepted", unit=MetricUnit.Count, value=1)
        logger.info(
            "saga start accepted",
            extra={"saga_id": started.saga_id, "saga_type": route.saga_type, "new_saga": started.created},
        )
        status_url = f"/{event.request_context.stage}/{route.path}/{started.saga_id}"
        # Only what every duplicate of this request can be told alike: the saga and where to watch it.
        return _json(
            202,
            {"saga_id": started.saga_id, "saga_type": route.saga_type, "status_url": status_url},
            headers={"Location": status_url},
        )

    @app.get(f"/{route.path}/<saga_id>")
    def status(saga_id: str) -> Response:
        return _json(200, front_door.status(route, saga_id))

    @app.get(f"/{route.path}")
    def listing() -> Response:
        query = app.current_event.query_string_parameters or {}
        return _json(200, front_door.list(route, query.get("status"), query.get("limit"), query.get("next_token")))


def check_media_type(headers: dict[str, str]) -> None:
    """The body must be JSON as sent: API Gateway validates a body against the model of its Content-Type only (none
    counts as JSON) and hands the rest on unvalidated, and it decodes no content coding (no minimum compression size
    is set). So another media type, a charset other than UTF-8, or any content coding is refused (415)."""
    content_type = headers.get("content-type")
    if content_type is not None:
        media_type, *parameters = (part.strip() for part in content_type.split(";"))
        charsets = [
            p.split("=", 1)[1].strip().strip('"').lower() for p in parameters if p.lower().startswith("charset=")
        ]
        if media_type.lower() != JSON or any(charset != "utf-8" for charset in charsets):
            raise UnsupportedMediaType(
                f"Content-Type {quoted(content_type)} is not taken: send {JSON}",
                [FieldProblem("Content-Type", f"{JSON} (UTF-8), or none")],
            )
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            f"Content-Encoding {quoted(encoding)} is not taken: send the JSON as it is",
            [FieldProblem("Content-Encoding", "none (identity)")],
        )


def error_body(error: ApiError) -> dict[str, Any]:
    """An error's answer, its size capped whatever the request held."""
    problems = [
        {"field": _cut(problem.field, MAX_FIELD_CHARS), "problem": _cut(problem.problem, MAX_TEXT_CHARS)}
        for problem in error.problems[:MAX_PROBLEMS]
    ]
    if len(error.problems) > MAX_PROBLEMS:
        problems.append({"field": "(more)", "problem": f"{len(error.problems) - MAX_PROBLEMS} more problems"})
    return {"message": _cut(error.message, MAX_TEXT_CHARS), "errors": problems}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _body_bytes(event: Any) -> bytes:
    """The body as received: sizes are in bytes, and are checked before anything parses the body."""
    if event.body is None:
        return b""
    return base64.b64decode(event.body) if event.is_base64_encoded else event.body.encode("utf-8")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers or {})

"""Lambda entry points of the API (API Gateway REST proxy events) and of the orphan reconciler (a schedule).

Thin: routing and HTTP shapes here, the work in service.py; every domain exception becomes its HTTP answer
in `_answer_error`, the one place that knows status codes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from saga_api.errors import ApiError, InvalidBody, InvalidParameter, MalformedBody, RequestTooLarge, SagaNotFound
from saga_api.observability import logger, metrics, tracer
from saga_api.reconciler import OrphanReconciler
from saga_api.service import IDEMPOTENCY_KEY_HEADER, OrderSagas
from saga_api.settings import ApiSettings
from saga_records import SagaRecordRepository
from saga_records.starter import SagaConflict, SagaStartDeferred, SagaStarter

JSON = "application/json"
RETRY_AFTER_SECONDS = 1  # StartExecution throttling refills within a second
STATUS_CODES: dict[type[Exception], int] = {
    MalformedBody: 400,
    InvalidParameter: 400,
    SagaNotFound: 404,
    SagaConflict: 409,
    RequestTooLarge: 413,
    InvalidBody: 422,
    SagaStartDeferred: 503,
}


def build_resolver(orders: OrderSagas) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.post("/orders")
    def start_order() -> Response:
        event = app.current_event
        headers = {name.lower(): value for name, value in (event.headers or {}).items()}
        started = orders.start(_body_bytes(event), headers.get(IDEMPOTENCY_KEY_HEADER.lower()))
        metrics.add_metric(name="SagaStartAccepted", unit=MetricUnit.Count, value=1)
        logger.info("saga start accepted", extra={"saga_id": started.saga_id, "created": started.created})
        status_url = f"/{event.request_context.stage}/orders/{started.saga_id}"
        # Only what every duplicate of this request can be told alike: the saga and where to watch it.
        return _json(202, {"saga_id": started.saga_id, "status_url": status_url}, headers={"Location": status_url})

    @app.get("/orders/<saga_id>")
    def get_order(saga_id: str) -> Response:
        return _json(200, orders.status(saga_id))

    @app.get("/orders")
    def list_orders() -> Response:
        query = app.current_event.query_string_parameters or {}
        return _json(200, orders.list(query.get("status"), query.get("limit"), query.get("next_token")))

    @app.exception_handler([ApiError, SagaConflict, SagaStartDeferred])
    def _answer_error(error: Exception) -> Response:
        status = STATUS_CODES[type(error)]
        metrics.add_metric(name=f"Http{status}", unit=MetricUnit.Count, value=1)
        if isinstance(error, ApiError):
            body = {"message": error.message, "errors": [vars(problem) for problem in error.problems]}
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


def _body_bytes(event: Any) -> bytes:
    """The body as received: sizes are in bytes, and are checked before anything parses the body."""
    if event.body is None:
        return b""
    return base64.b64decode(event.body) if event.is_base64_encoded else event.body.encode("utf-8")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers or {})


settings = ApiSettings.from_env()
records = SagaRecordRepository(settings.saga_table_name)
starter = SagaStarter(records, settings.state_machine_arn, settings.saga_type, list(settings.saga_steps))
resolver = build_resolver(OrderSagas(starter, records, max_request_bytes=settings.max_request_bytes))
orphans = OrphanReconciler(
    starter,
    records,
    grace_seconds=settings.start_grace_seconds * settings.time_scale,
    give_up_seconds=settings.start_give_up_seconds * settings.time_scale,
)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handle_request(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver.resolve(event, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def reconcile_orphans(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sweep = orphans.sweep()
    metrics.add_metric(name="OrphanSagasStarted", unit=MetricUnit.Count, value=len(sweep.started))
    metrics.add_metric(name="OrphanSagasFailed", unit=MetricUnit.Count, value=len(sweep.failed))
    logger.info("orphan sweep", extra=vars(sweep))
    return vars(sweep)

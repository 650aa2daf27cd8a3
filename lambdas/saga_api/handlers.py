"""Lambda entry points: the API (API Gateway REST proxy events) and the orphan reconciler (an EventBridge schedule).

Thin: the environment is parsed once at cold start, the dependencies wired here, the work done in routes.py,
service.py and reconciler.py.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from saga_api.admission import Admission, DynamoDBBucket, SqsBacklogs
from saga_api.observability import logger, metrics, tracer
from saga_api.page_tokens import KmsMac, PageTokens
from saga_api.reconciler import OrphanReconciler
from saga_api.routes import build_resolver
from saga_api.service import Route, SagaFrontDoor
from saga_api.settings import ApiSettings
from saga_records import SagaRecordRepository
from saga_records.starter import SagaStarter

settings = ApiSettings.from_env()
records = SagaRecordRepository(settings.saga_table_name)
starter = SagaStarter(records, [saga.spec for saga in settings.sagas])
front_door = SagaFrontDoor(
    starter,
    records,
    [Route.of(saga) for saga in settings.sagas],
    max_request_bytes=settings.max_request_bytes,
    page_tokens=PageTokens(KmsMac(settings.page_token_key_id)),
    admission=Admission(
        {saga.saga_type: saga.admission.limits() for saga in settings.sagas},
        DynamoDBBucket(settings.admission_table_name),
        SqsBacklogs(
            {saga.saga_type: saga.state_machine_arn for saga in settings.sagas if saga.state_machine_arn},
            queue_parameters={
                saga.saga_type: saga.command_queues_parameter
                for saga in settings.sagas
                if saga.command_queues_parameter
            },
        ),
    ),
)
resolver = build_resolver(front_door)
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

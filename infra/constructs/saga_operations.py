"""Saga operations: the stuck-saga detector on a schedule, its operators' queue, and the execution-status reconciler.

- Detector: an EventBridge schedule runs a Lambda that finds sagas past their deadline (derived from the step SLAs at
  synth) or parked, and sends each incident once to the stuck-sagas queue (encrypted, TLS-only, with its own DLQ)
  and as a notice to the alarm topic.
- Reconciler: an EventBridge rule on "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED) of the saga
  state machines invokes a Lambda that parks the saga record when Catch could not (a failed delivery or invocation
  lands in a DLQ, which is alarmed like every other).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants
from infra.constructs.powertools_function import SharedResources, powertools_function
from infra.constructs.saga_store import grant_saga_items, grant_status_query
from saga_operations.execution_status import DETAIL_TYPE, SOURCE, UNCAUGHT_STATUSES


def secure_queue(scope: Construct, construct_id: str, *, dead_letter_queue: sqs.IQueue | None = None) -> sqs.Queue:
    """Encrypted, TLS-only, kept 14 days; with a DLQ when one is given."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(constants.STUCK_SAGAS_RETENTION_DAYS),
        dead_letter_queue=(
            sqs.DeadLetterQueue(queue=dead_letter_queue, max_receive_count=constants.MAX_RECEIVE_COUNT)
            if dead_letter_queue is not None
            else None
        ),
    )


class SagaOperations(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: SharedResources,
        state_machines: Sequence[sfn.StateMachine],
        deadlines: Mapping[str, int],
        alarm_topic: sns.ITopic,
        alarm_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        saga_table = shared.saga_table

        self.stuck_sagas_dead_letter_queue = secure_queue(self, "StuckSagasDeadLetterQueue")
        self.stuck_sagas_queue = secure_queue(
            self, "StuckSagasQueue", dead_letter_queue=self.stuck_sagas_dead_letter_queue
        )
        self.detector = _operations_function(
            self,
            "Detector",
            handler=constants.DETECTOR_HANDLER,
            shared=shared,
            environment={
                "STUCK_SAGAS_QUEUE_URL": self.stuck_sagas_queue.queue_url,
                "SAGA_DEADLINES_JSON": json.dumps(dict(deadlines), sort_keys=True),
                "INCIDENT_TOPIC_ARN": alarm_topic.topic_arn,
            },
        )
        # Queries the by_status index and claims incidents with a conditional update; never scans.
        grant_status_query(saga_table, self.detector)
        grant_saga_items(saga_table, self.detector, "dynamodb:UpdateItem")
        self.stuck_sagas_queue.grant_send_messages(self.detector)
        # Topic.grant_publish would grant kms:GenerateDataKey* (every data-key variant); publishing to an encrypted
        # topic takes these two.
        iam.Grant.add_to_principal(
            grantee=self.detector, actions=["sns:Publish"], resource_arns=[alarm_topic.topic_arn]
        )
        alarm_key.grant(self.detector, "kms:GenerateDataKey", "kms:Decrypt")
        self.detector_schedule = events.Rule(
            self,
            "DetectorSchedule",
            description="Runs the stuck-saga detector",
            schedule=events.Schedule.rate(Duration.minutes(constants.DETECTOR_SCHEDULE_MINUTES)),
            # A missed run is made up by the next one a minute later.
            targets=[targets.LambdaFunction(self.detector, retry_attempts=0)],
        )

        # One DLQ for both ways a status-change event can be lost: EventBridge failing to invoke, or the
        # asynchronous invocation failing after Lambda's own retries.
        self.reconciler_dead_letter_queue = secure_queue(self, "ReconcilerDeadLetterQueue")
        self.reconciler = _operations_function(
            self,
            "ExecutionStatusReconciler",
            handler=constants.RECONCILER_HANDLER,
            shared=shared,
            environment={},
            dead_letter_queue=self.reconciler_dead_letter_queue,
        )
        # Reads the record, parks it with a conditional update.
        grant_saga_items(saga_table, self.reconciler, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self.execution_status_rule = events.Rule(
            self,
            "ExecutionStatusRule",
            description="Saga executions that ended where no Catch runs: the reconciler brings the record to the truth",
            event_pattern=events.EventPattern(
                source=[SOURCE],
                detail_type=[DETAIL_TYPE],
                detail={
                    "status": list(UNCAUGHT_STATUSES),
                    "stateMachineArn": [machine.state_machine_arn for machine in state_machines],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.reconciler,
                    dead_letter_queue=self.reconciler_dead_letter_queue,
                    retry_attempts=constants.EVENT_TARGET_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(constants.EVENT_TARGET_MAX_EVENT_AGE_HOURS),
                )
            ],
        )
        self.functions = {"Detector": self.detector, "ExecutionStatusReconciler": self.reconciler}
        self.dead_letter_queues = {
            "StuckSagasDLQ": self.stuck_sagas_dead_letter_queue,
            "ReconcilerDLQ": self.reconciler_dead_letter_queue,
        }


def _operations_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    shared: SharedResources,
    environment: dict[str, str],
    dead_letter_queue: sqs.IQueue | None = None,
) -> lambda_.Function:
    return powertools_function(
        scope,
        construct_id,
        handler=handler,
        shared=shared,
        timeout_seconds=constants.OPERATIONS_FUNCTION_TIMEOUT_SECONDS,
        dead_letter_queue=dead_letter_queue,
        environment={
            "SAGA_TABLE_NAME": shared.saga_table.table_name,
            "POWERTOOLS_SERVICE_NAME": constants.OPERATIONS_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": constants.POWERTOOLS_METRICS_NAMESPACE,
            **environment,
        },
    )

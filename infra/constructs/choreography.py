"""Choreographed sagas: one EventBridge bus, a rule per choreographed command whose target is that command's own queue
(the queue and DLQ the orchestrated sagas use), the saga tracker (its own queue, DLQ and function) that keeps the saga
records, and the role EventBridge Scheduler assumes to put a step's deadline on the bus.

Least privilege, each grant checkable on the template (tests/infra/test_wiring_audit.py): a participant may put
events on the bus only under the sources of the sagas it serves (`events:source`), and send only to its own queue (a
transient failure's retry); the tracker may create deadline schedules of its prefix only, pass only the scheduler role,
and put events only under the choreographed sagas' sources; the scheduler role may put events on this bus only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants, nag
from infra.constructs.participant import CommandConsumer, CommandRef
from infra.constructs.powertools_function import SharedResources, powertools_function
from infra.constructs.saga_store import grant_saga_items
from statemachines import SagaDefinition
from statemachines.choreography import command_fields, reactions, tracker_setting

# The event sources and the schedule names live with the Lambda code (one source of truth): read from its code root.
if str(constants.LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(constants.LAMBDAS_DIR))
from saga_tracker.deadlines import SCHEDULE_PREFIX

from saga_records.events import deadline_source, saga_source


def grant_put_saga_events(bus: events.IEventBus, grantee: iam.IGrantable, sources: Sequence[str]) -> None:
    """PutEvents on the saga bus, only under these sources."""
    iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["events:PutEvents"],
        resource_arns=[bus.event_bus_arn],
        conditions={"StringEquals": {"events:source": sorted(set(sources))}},
    )


class SagaChoreography(Construct):
    """The bus, its rules, the tracker and the scheduler role, for every choreographed saga of the stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definitions: Sequence[SagaDefinition],
        consumers: Mapping[CommandRef, CommandConsumer],
        shared: SharedResources,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.bus = events.EventBus(self, "Bus")
        self.sources = [saga_source(definition.name) for definition in definitions]

        # EventBridge Scheduler puts each step's deadline on the bus as this role, for this account only.
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
        )
        grant_put_saga_events(
            self.bus, self.scheduler_role, [deadline_source(definition.name) for definition in definitions]
        )

        self.dead_letter_queue = sqs.Queue(
            self,
            "TrackerDeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(constants.DLQ_RETENTION_DAYS),
        )
        self.queue = sqs.Queue(
            self,
            "TrackerQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(constants.VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=constants.MAX_RECEIVE_COUNT
            ),
        )
        self.tracker = powertools_function(
            self,
            "Tracker",
            handler=constants.TRACKER_HANDLER,
            shared=shared,
            environment={
                "SAGA_TABLE_NAME": shared.saga_table.table_name,
                "SAGA_BUS_NAME": self.bus.event_bus_name,
                "SAGA_BUS_ARN": self.bus.event_bus_arn,
                "SCHEDULER_ROLE_ARN": self.scheduler_role.role_arn,
                "SCHEDULE_GROUP": constants.DEADLINE_SCHEDULE_GROUP,
                "CHOREOGRAPHIES": json.dumps(
                    [tracker_setting(definition) for definition in definitions], separators=(",", ":")
                ),
                "POWERTOOLS_SERVICE_NAME": constants.TRACKER_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": constants.POWERTOOLS_METRICS_NAMESPACE,
            },
        )
        self.tracker.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=constants.BATCH_SIZE, report_batch_item_failures=True)
        )
        grant_saga_items(shared.saga_table, self.tracker, "dynamodb:GetItem", "dynamodb:UpdateItem")
        grant_put_saga_events(self.bus, self.tracker, self.sources)
        iam.Grant.add_to_principal(
            grantee=self.tracker,
            actions=["scheduler:CreateSchedule"],
            resource_arns=[
                f"arn:{Aws.PARTITION}:scheduler:{Aws.REGION}:{Aws.ACCOUNT_ID}:schedule/"
                f"{constants.DEADLINE_SCHEDULE_GROUP}/{SCHEDULE_PREFIX}*"
            ],
        )
        self.scheduler_role.grant_pass_role(self.tracker)
        nag.acknowledge(
            self.tracker.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/"
            f"{constants.DEADLINE_SCHEDULE_GROUP}/{SCHEDULE_PREFIX}*]",
            "Each step's deadline is a schedule of its own, named after its saga and step when the step is requested: "
            "the names cannot be listed at deploy time, so the grant is held to the tracker's name prefix.",
        )

        # Every event of every choreographed saga, deadlines included, to the tracker.
        events.Rule(
            self,
            "TrackEverySagaEvent",
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=[*self.sources, *(deadline_source(definition.name) for definition in definitions)]
            ),
            targets=[
                targets.SqsQueue(
                    self.queue,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=constants.EVENT_TARGET_RETRY_ATTEMPTS,
                    max_event_age=Duration.hours(constants.EVENT_TARGET_MAX_EVENT_AGE_HOURS),
                )
            ],
        )

        # Each command reacts to its events through its own queue; its participant answers on the bus.
        served: dict[CommandRef, set[str]] = {}
        for definition in definitions:
            for reaction in reactions(definition):
                ref = CommandRef(reaction.step.service, reaction.command)
                consumer = consumers[ref]
                served.setdefault(ref, set()).add(saga_source(definition.name))
                events.Rule(
                    self,
                    f"{definition.name}{reaction.command}",
                    event_bus=self.bus,
                    event_pattern=events.EventPattern(
                        source=[saga_source(definition.name)], detail_type=list(reaction.on)
                    ),
                    targets=[
                        targets.SqsQueue(
                            consumer.queue,
                            message=events.RuleTargetInput.from_object(
                                {
                                    **command_fields(definition, reaction),
                                    "event": events.EventField.from_path("$.detail"),
                                }
                            ),
                            dead_letter_queue=consumer.dead_letter_queue,
                            retry_attempts=constants.EVENT_TARGET_RETRY_ATTEMPTS,
                            max_event_age=Duration.hours(constants.EVENT_TARGET_MAX_EVENT_AGE_HOURS),
                        )
                    ],
                )
        for ref, sources in served.items():
            consumer = consumers[ref]
            consumer.function.add_environment("SAGA_BUS_NAME", self.bus.event_bus_name)
            grant_put_saga_events(self.bus, consumer.function, sorted(sources))
            # A transient failure's retry: the command back on its own queue, delayed.
            consumer.queue.grant_send_messages(consumer.function)

"""A saga participant: one service, its own domain table, and one queue-fed Lambda per command it handles.

Least privilege, each grant checkable on the template (tests/infra/test_wiring_audit.py): a participant's function
may call the item actions the toolkit's data layer calls on its own table (no Scan, batch or stream actions), reach
only its own idempotency records (`dynamodb:LeadingKeys` on "<service>."), and update only the saga-record
attributes the toolkit writes (`dynamodb:Attributes`, listed once in saga_records.access).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants
from infra.constructs.powertools_function import SharedResources, powertools_function
from infra.constructs.saga_store import business_data_protection
from saga_records.access import PARTICIPANT_ACTIONS, PARTICIPANT_ATTRIBUTES

STRING = dynamodb.AttributeType.STRING


@dataclass(frozen=True, order=True)
class CommandRef:
    """A command as the stack wires it: command names are scoped by the service that handles them, so two services
    may each have a command of the same name (each with its own queue, function and alarms)."""

    service: str  # e.g. InventoryService
    command: str  # e.g. ReserveItems

    @property
    def label(self) -> str:
        """How alarms, dashboards and the operator CLI name it: InventoryService.ReserveItems."""
        return f"{self.service}.{self.command}"


@dataclass(frozen=True)
class ParticipantCommand:
    """A command the participant handles (an action or a compensation) and the handler that runs it."""

    name: str  # e.g. ReserveItems
    handler: str  # e.g. services.inventory.handlers.reserve_items
    heartbeat_seconds: int  # the shortest heartbeat window of the steps that send it (its queue's age alarm)


class Participant(Construct):
    """One service of the saga (e.g. InventoryService) with its domain table and a consumer per command."""

    def __init__(
        self,
        scope: Construct,
        service: str,
        *,
        commands: Sequence[ParticipantCommand],
        shared: SharedResources,
    ) -> None:
        super().__init__(scope, service)
        self.service = service
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=constants.DOMAIN_TABLE_PARTITION_KEY, type=STRING),
            sort_key=dynamodb.Attribute(name=constants.DOMAIN_TABLE_SORT_KEY, type=STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Business data (stock, payments, shipments): protected and kept, unless the stack is a throwaway.
            **business_data_protection(self),
        )
        self.consumers = {
            CommandRef(service, command.name): CommandConsumer(
                self, command, service=service, domain_table=self.table, shared=shared
            )
            for command in commands
        }


class CommandConsumer(Construct):
    """Queue + DLQ for one command and the Lambda that consumes it, with least-privilege grants."""

    def __init__(
        self,
        scope: Construct,
        command: ParticipantCommand,
        *,
        service: str,
        domain_table: dynamodb.ITable,
        shared: SharedResources,
    ) -> None:
        super().__init__(scope, command.name)
        self.command = command
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(constants.DLQ_RETENTION_DAYS),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # A message stays hidden while a (retried) invocation may still be working on it.
            visibility_timeout=Duration.seconds(constants.VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=constants.MAX_RECEIVE_COUNT
            ),
        )
        self.function = powertools_function(
            self,
            "",
            handler=command.handler,
            shared=shared,
            environment={
                "SERVICE_TABLE_NAME": domain_table.table_name,
                "SAGA_TABLE_NAME": shared.saga_table.table_name,
                "IDEMPOTENCY_TABLE_NAME": shared.idempotency_table.table_name,
                "POWERTOOLS_SERVICE_NAME": service,
                "POWERTOOLS_METRICS_NAMESPACE": constants.POWERTOOLS_METRICS_NAMESPACE,
            },
        )
        self.function.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=constants.BATCH_SIZE, report_batch_item_failures=True)
        )
        # The toolkit brings a delivery that met another's idempotency lock back within its heartbeat window,
        # instead of after the visibility timeout (the event source's own grant includes it today; this says why).
        self.queue.grant(self.function, "sqs:ChangeMessageVisibility")
        # What the toolkit's data layer (participant_toolkit.dynamodb.SagaTable) calls on the command path:
        # grant_read_write_data would add Scan, BatchGet/BatchWrite, DeleteItem and DescribeTable.
        domain_table.grant(self.function, *constants.DOMAIN_TABLE_ACTIONS)
        # Conditioned grants (Grant.add_to_principal; Table.grant takes no conditions), on the table ARN only: item
        # actions never use "<table>/index/*", which the L2 table grants add once a table has an index.
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=list(constants.IDEMPOTENCY_ACTIONS),
            resource_arns=[shared.idempotency_table.table_arn],
            # Powertools keys every record of this service "<service>.<kind>[.answer]#<hash>" (key_prefix in
            # participant_toolkit/participant.py): another service's stored outcomes are out of reach.
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{service}.*"]}},
        )
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=list(PARTICIPANT_ACTIONS),
            resource_arns=[shared.saga_table.table_arn],
            conditions={
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(PARTICIPANT_ATTRIBUTES)},
                "StringEqualsIfExists": {
                    # An update returning whole items (ALL_OLD / ALL_NEW) would read attributes beyond the list,
                    # and so would a GetItem without a projection (SagaRecordRepository.progress projects).
                    "dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"],
                    "dynamodb:Select": ["SPECIFIC_ATTRIBUTES"],
                },
            },
        )

"""DynamoDB tables shared by every saga: the saga records and the Powertools idempotency records."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra import constants

STRING = dynamodb.AttributeType.STRING
POINT_IN_TIME_RECOVERY = dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)


class SagaStore(Construct):
    """One item per saga (status, current step, errors), listed by status through the `by_status` index."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=constants.SAGA_TABLE_PARTITION_KEY, type=STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=POINT_IN_TIME_RECOVERY,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # The saga records are the audit trail of every business transaction: never deleted with the stack.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=constants.SAGA_STATUS_INDEX,
            partition_key=dynamodb.Attribute(name=constants.SAGA_STATUS_INDEX_PARTITION_KEY, type=STRING),
            sort_key=dynamodb.Attribute(name=constants.SAGA_STATUS_INDEX_SORT_KEY, type=STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )


class IdempotencyStore(Construct):
    """Powertools Idempotency records of every participant; they expire through the TTL attribute."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=constants.IDEMPOTENCY_PARTITION_KEY, type=STRING),
            time_to_live_attribute=constants.IDEMPOTENCY_TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=POINT_IN_TIME_RECOVERY,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Short-lived records that expire on their own: nothing to keep once the stack is gone.
            removal_policy=RemovalPolicy.DESTROY,
        )

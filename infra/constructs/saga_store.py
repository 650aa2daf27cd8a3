"""DynamoDB tables shared by every saga: the saga records and the Powertools idempotency records."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import constants

STRING = dynamodb.AttributeType.STRING
POINT_IN_TIME_RECOVERY = dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True)


def deletion_protection_requested(value: object) -> bool:
    """The `deletionProtection` context value: on unless it says false (a throwaway stack); else an error."""
    if value is None or value is True or str(value).lower() == "true":
        return True
    if value is False or str(value).lower() == "false":
        return False
    raise ValueError(f"context '{constants.DELETION_PROTECTION_CONTEXT}': {value!r} is neither true nor false")


def business_data_protection(scope: Construct) -> dict[str, Any]:
    """Table settings for records a business keeps: deletion protection (a table delete, by hand or by the stack,
    is refused) and retention when the stack goes. `-c deletionProtection=false` drops both, for throwaway stacks."""
    if deletion_protection_requested(scope.node.try_get_context(constants.DELETION_PROTECTION_CONTEXT)):
        return {"deletion_protection": True, "removal_policy": RemovalPolicy.RETAIN}
    return {"deletion_protection": False, "removal_policy": RemovalPolicy.DESTROY}


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
            # The saga records are the audit trail of every business transaction: protected and kept.
            **business_data_protection(self),
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


# Grants on the saga table, by what each action applies to. Table.grant() puts "<table ARN>/index/*" beside the
# table ARN for every action once the table has an index; item actions never apply to an index, and only Query
# reads the one index there is.
def grant_saga_items(table: dynamodb.ITable, grantee: iam.IGrantable, *actions: str) -> iam.Grant:
    """Item actions (GetItem, PutItem, UpdateItem) on the saga table itself."""
    return iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[table.table_arn])


def grant_status_query(table: dynamodb.ITable, grantee: iam.IGrantable) -> iam.Grant:
    """Query on the `by_status` index: listing sagas by status and age, never a scan."""
    return iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["dynamodb:Query"],
        resource_arns=[f"{table.table_arn}/index/{constants.SAGA_STATUS_INDEX}"],
    )

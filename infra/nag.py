"""cdk-nag (v3) wiring and the few acknowledgements the stack needs, each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

WILDCARD_RESOURCE = "AwsSolutions-IAM5[Resource::*]"
SAGA_INDEX_REASON = (
    "The L2 table grant adds '<saga table ARN>/index/*' because the table has a GSI; the granted actions "
    "(UpdateItem, GetItem) do not apply to indexes, and the wildcard covers only this table's own indexes."
)

OPERATIONS_INDEX_REASON = (
    "The L2 table grant adds '<saga table ARN>/index/*' because the table has a GSI; the detector queries the "
    "by_status index through it (GetItem/UpdateItem do not apply to indexes), and only this table's indexes match."
)


def add_nag_checks(app: App) -> None:
    """Run the AWS Solutions pack at synth; an unacknowledged error makes an in-process synth raise."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def table_index_wildcard(table: dynamodb.Table) -> str:
    """Finding id of the `<table arn>/index/*` resource the L2 table grants add once the table has a GSI."""
    stack = Stack.of(table)
    logical_id = stack.resolve(stack.get_logical_id(table.node.default_child))
    return f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/index/*]"

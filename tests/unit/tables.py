"""The tables of the stack as unit tests create them on moto (call inside `mock_aws`): the layouts the CDK
constructs declare (infra/constants.py), written once."""

from __future__ import annotations

import boto3


def create_saga_table(name: str) -> None:
    """The saga records: keyed by saga id, with the `by_status` index (status, created_at)."""
    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": key, "AttributeType": "S"} for key in ("saga_id", "status", "created_at")
        ],
        KeySchema=[{"AttributeName": "saga_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def create_service_table(name: str) -> str:
    """A participant's own table (keys `pk`, `sk`)."""
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_idempotency_table(name: str) -> None:
    """Powertools idempotency's default layout (key `id`)."""
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

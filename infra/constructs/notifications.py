"""The alarm topic: where every alarm and every incident notice goes, and who hears it.

KMS-encrypted (a rotated key of its own) and TLS-only. Both the topic policy and the key policy let
`cloudwatch.amazonaws.com` in for alarms of this account and region whose names start with "<stack name>/" (every
alarm of the stack is named so): the TLS-only policy CDK writes would otherwise replace SNS's default policy with a
Deny alone, and no alarm could publish. Subscriptions are chosen at deploy time (`-c alarmEmail=...`,
`-c alarmEndpoint=<protocol>:<endpoint>`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import constants

CLOUDWATCH = "cloudwatch.amazonaws.com"
# SNS protocols a subscription may use here. Firehose needs a subscription role: not offered.
PROTOCOLS = {
    "email": sns.SubscriptionProtocol.EMAIL,
    "email-json": sns.SubscriptionProtocol.EMAIL_JSON,
    "http": sns.SubscriptionProtocol.HTTP,
    "https": sns.SubscriptionProtocol.HTTPS,
    "sms": sns.SubscriptionProtocol.SMS,
    "sqs": sns.SubscriptionProtocol.SQS,
    "lambda": sns.SubscriptionProtocol.LAMBDA,
    "application": sns.SubscriptionProtocol.APPLICATION,
}
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


@dataclass(frozen=True)
class Subscription:
    protocol: str  # a key of PROTOCOLS
    endpoint: str


def requested_subscriptions(emails: object, endpoints: object) -> list[Subscription]:
    """The subscriptions the `alarmEmail` and `alarmEndpoint` context values ask for (comma-separated each).

    A value that is not an address, or names no known protocol, is an error naming the context key: a deploy that
    would silently subscribe nobody is worse than one that stops.
    """
    found: list[Subscription] = []
    for email in _items(emails):
        if not _EMAIL.match(email):
            raise ValueError(f"context '{constants.ALARM_EMAIL_CONTEXT}': {email!r} is not an e-mail address")
        found.append(Subscription("email", email))
    for item in _items(endpoints):
        protocol, _, endpoint = item.partition(":")
        if protocol.lower() not in PROTOCOLS or not endpoint:
            raise ValueError(
                f"context '{constants.ALARM_ENDPOINT_CONTEXT}': {item!r} is not <protocol>:<endpoint> with a protocol "
                f"among {', '.join(PROTOCOLS)}"
            )
        found.append(Subscription(protocol.lower(), endpoint))
    return found


def _items(value: object) -> list[str]:
    if value is None:
        return []
    return [item.strip() for item in str(value).split(",") if item.strip()]


def alarm_name(scope: Construct, name: str) -> str:
    """The name every alarm of the stack gets: "<stack name>/<name>" (the policies below match on the prefix)."""
    return f"{Stack.of(scope).stack_name}/{name}"


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Alarms of this stack only, in this account and region: the confused-deputy guard AWS documents for
        # service principals, on both the topic and its key.
        self.alarm_arn_pattern = (
            f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{alarm_name(self, '*')}"
        )
        from_our_alarms = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": self.alarm_arn_pattern},
        }
        self.key = kms.Key(
            self, "AlarmTopicKey", enable_key_rotation=True, description="Encrypts the saga alarm notifications"
        )
        # Hand-written: Key.grant() takes no conditions, and an unconditioned grant lets any alarm of any account
        # use the key through CloudWatch.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStack",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=from_our_alarms,
            )
        )
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Saga alarms", master_key=self.key, enforce_ssl=True)
        # Hand-written for the same reason: Topic.grant_publish() takes no conditions.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisStack",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_our_alarms,
            )
        )
        requested = requested_subscriptions(
            self.node.try_get_context(constants.ALARM_EMAIL_CONTEXT),
            self.node.try_get_context(constants.ALARM_ENDPOINT_CONTEXT),
        )
        for index, subscription in enumerate(requested):
            sns.Subscription(
                self,
                f"Subscription{index}",
                topic=self.topic,
                protocol=PROTOCOLS[subscription.protocol],
                endpoint=subscription.endpoint,
            )
        self.subscriptions = requested

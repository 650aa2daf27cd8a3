"""Where things are: names read from the deployed stack (outputs and resources), never configured by hand."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from infra import constants


class StackUnreachable(Exception):
    """No stack to operate on: no region or credentials, an endpoint that does not answer, or no such stack."""


@dataclass(frozen=True)
class DeadLetterQueue:
    label: str  # the queue's construct name, e.g. InventoryServiceReserveItemsDeadLetterQueue
    url: str
    source_url: str | None  # the queue that dead-letters into it; None for a Lambda / EventBridge DLQ


@dataclass(frozen=True)
class BusRoute:
    """A rule of the saga bus that sends one command of a choreographed saga: the events (detail-types) it reacts to
    and the queue it sends the command to."""

    saga_type: str
    step: str
    kind: str  # action | compensation
    command: str
    detail_types: tuple[str, ...]
    queue_url: str


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    saga_table: str
    stuck_sagas_queue_url: str
    state_machines: dict[str, str]  # saga type -> state machine ARN
    dead_letter_queues: list[DeadLetterQueue]
    saga_bus: str | None = None  # the choreographed sagas' bus, if the stack has any
    # saga type -> its bus routes, read once: a resume sends several commands, each looked up among the same rules
    _bus_routes: dict[str, list[BusRoute]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, stack_name: str = constants.STACK_NAME) -> Deployment:
        """Read the stack's names; `StackUnreachable` says why when there is no stack to read."""
        try:
            cloudformation = boto3.client("cloudformation")
            stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        except NoRegionError:
            raise StackUnreachable(
                "no AWS region: set AWS_DEFAULT_REGION (or AWS_PROFILE), or --endpoint-url for the local runtime"
            ) from None
        except NoCredentialsError:
            raise StackUnreachable("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/SECRET") from None
        except EndpointConnectionError as error:
            raise StackUnreachable(f"cannot reach {error.kwargs.get('endpoint_url')}: is the endpoint up?") from None
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationError":  # CloudFormation's answer for a missing stack
                raise StackUnreachable(
                    f"stack {stack_name} not found in {cloudformation.meta.region_name}: deploy it, or pass --stack"
                ) from None
            raise
        outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
        suffix = constants.state_machine_output("")
        return cls(
            stack_name=stack_name,
            saga_table=outputs[constants.SAGA_TABLE_OUTPUT],
            stuck_sagas_queue_url=outputs[constants.STUCK_SAGAS_OUTPUT],
            state_machines={key.removesuffix(suffix): value for key, value in outputs.items() if key.endswith(suffix)},
            dead_letter_queues=_dead_letter_queues(cloudformation, stack_name),
            saga_bus=outputs.get(constants.SAGA_BUS_OUTPUT),
        )

    def command_queue_url(self, saga_type: str, command: str) -> str:
        """The queue the saga's state machine sends `command` to, an action or a compensation (its deployed definition
        holds the substituted URL; each command is the state of its name); for a choreographed saga, the queue its
        bus rule for that command targets."""
        if saga_type not in self.state_machines:
            return self._choreographed_queue_url(saga_type, command)
        definition = boto3.client("stepfunctions").describe_state_machine(
            stateMachineArn=self.state_machines[saga_type]
        )["definition"]
        return json.loads(definition)["States"][command]["Parameters"]["QueueUrl"]

    def _choreographed_queue_url(self, saga_type: str, command: str) -> str:
        for route in self.bus_routes(saga_type):
            if route.command == command:
                return route.queue_url
        raise KeyError(f"saga type {saga_type}: no rule of the saga bus sends {command}")

    def bus_routes(self, saga_type: str) -> list[BusRoute]:
        """Every command the saga bus sends for `saga_type`, read from its deployed rules (the command fields their
        input transformers write, the detail-types their patterns match, the queues they target)."""
        if self.saga_bus is None:
            raise KeyError(f"saga type {saga_type}: no state machine, and the stack has no saga bus")
        if saga_type not in self._bus_routes:
            self._bus_routes[saga_type] = self._read_bus_routes(saga_type)
        return self._bus_routes[saga_type]

    def _read_bus_routes(self, saga_type: str) -> list[BusRoute]:
        events, sqs = boto3.client("events"), boto3.client("sqs")
        routes = []
        for page in events.get_paginator("list_rules").paginate(EventBusName=self.saga_bus):
            for rule in page["Rules"]:
                for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=self.saga_bus)["Targets"]:
                    template = (target.get("InputTransformer") or {}).get("InputTemplate")
                    if not template:
                        continue
                    fields = command_fields(template)
                    if fields is None or fields.get("saga_type") != saga_type:
                        continue
                    *_, account, name = target["Arn"].split(":", 5)
                    routes.append(
                        BusRoute(
                            saga_type=saga_type,
                            step=fields["step"],
                            kind=fields["kind"],
                            command=fields["command"],
                            detail_types=tuple(json.loads(rule.get("EventPattern") or "{}").get("detail-type", [])),
                            queue_url=sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"],
                        )
                    )
        return routes


def _dead_letter_queues(cloudformation: Any, stack_name: str) -> list[DeadLetterQueue]:
    sqs = boto3.client("sqs")
    queues: dict[str, tuple[str, str]] = {}  # ARN -> (label, URL)
    paginator = cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::SQS::Queue":
                url = resource["PhysicalResourceId"]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                queues[arn] = (_label(resource["LogicalResourceId"]), url)
    source_of: dict[str, str] = {}
    for _label_of_queue, url in queues.values():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        if "RedrivePolicy" in attributes:
            source_of[json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]] = url
    return sorted(
        (
            DeadLetterQueue(label=label, url=url, source_url=source_of.get(arn))
            for arn, (label, url) in queues.items()
            if arn in source_of or "DeadLetterQueue" in label
        ),
        key=lambda queue: queue.label,
    )


def _label(logical_id: str) -> str:
    return re.sub(r"[0-9A-F]{8}$", "", logical_id)


INPUT_PLACEHOLDER = re.compile(r"<[^<>\s\"]+>")  # an input transformer's `<name>`, e.g. `<detail>`


def command_fields(template: str) -> dict[str, Any] | None:
    """The fields a rule target's input template writes, each placeholder read as null; None for a template that is
    no JSON object (a target of another kind on the same bus: a team's own rule, the test kit's observer)."""
    try:
        fields = json.loads(INPUT_PLACEHOLDER.sub("null", template))
    except json.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None

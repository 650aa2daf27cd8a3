"""Admission control at the front door: a saga type takes no more starts than its participants can take.

Checked after the request is validated and before anything is written (statemachines/admission.py says why and where
the limits come from). Two checks, cheapest first; a refusal (`StartRefused`) is answered `429` with `Retry-After`:

- backlog: the commands waiting or being worked in each of the saga's participant queues (SQS
  ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible: a batch's commands are worked one after
  another, so a received one may wait too). A reading leaves a room, `max_queue_backlog` minus the fullest queue,
  that every execution environment draws on (one conditional UpdateItem per start, in the admission table), so a
  burst spread over many environments cannot each take the same room; once the room is spent, starts are refused
  until the next reading, which one environment takes at most once per `BACKLOG_READ_SECONDS` (every queue of the
  saga at once). The queues are the ones the deployed state machine sends to (DescribeStateMachine, once per
  environment), or for a choreographed saga the ones its bus rules feed, listed in an SSM parameter the stack writes
  (GetParameter, once per environment), so nothing in the environment grows with the steps.
- rate: a token bucket per saga type in DynamoDB (GCRA: one item holding the theoretical arrival time of the next
  start). An admitted start costs one more conditional UpdateItem; a refused one tells exactly when one would pass.

Both fail open: a check whose AWS call fails lets the start through (logged), since the start itself then meets the
same service trouble and answers for it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import BotoCoreError, ClientError

from saga_api.observability import logger, metrics
from saga_records import metric_names

CALLBACK_RESOURCE = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
BACKLOG_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")  # waiting, being worked
BACKLOG_READ_SECONDS = 1.0  # how stale a queue's backlog may be in one execution environment (real seconds)
MICROSECONDS = 1_000_000
MAX_BUCKET_TRIES = 5  # conditional writes per start: the expected branch, the other one, and lost races
ROOM_KEY_SUFFIX = "#backlog"  # the item of a saga type's backlog room, beside its start-rate bucket


@dataclass(frozen=True)
class AdmissionLimits:
    """One saga type's limits (the definition's `admission:` block with its defaults, in the SAGAS setting)."""

    starts_per_second: float
    burst: int
    max_queue_backlog: int


class StartRefused(Exception):
    """The saga type takes no start now: answer 429, `Retry-After: retry_after_seconds`."""

    def __init__(self, saga_type: str, reason: str, retry_after_seconds: int, detail: str) -> None:
        super().__init__(f"{saga_type}: {detail}")
        self.saga_type = saga_type
        self.reason = reason  # "rate" | "backlog": the metric's dimension
        self.retry_after_seconds = retry_after_seconds
        self.detail = detail


class Bucket(Protocol):
    def take(self, saga_type: str, limits: AdmissionLimits, now_us: int) -> int | None:
        """Take one start from the saga type's bucket: None if taken, else microseconds until one would pass."""
        ...

    def take_room(
        self,
        saga_type: str,
        limits: AdmissionLimits,
        now_us: int,
        read_every_us: int,
        fullest: Callable[[], int | None],
    ) -> bool | None:
        """Take one start from the room the queues' last reading left, shared by every environment: True taken, False
        none left; a reading older than `read_every_us` is taken again first (`fullest()`). None: the room could not
        be known (the start is then admitted on the rate alone)."""
        ...


class Backlogs(Protocol):
    def queues(self, saga_type: str) -> list[str]:
        """The saga's participant queue URLs, the first step's action queue first."""
        ...

    def waiting(self, queue_urls: list[str]) -> dict[str, int]:
        """Commands waiting or being worked (received, not yet deleted) in each queue."""
        ...


@dataclass
class Admission:
    """Decides whether a start of a saga type is taken now (any number of execution environments at once)."""

    limits: dict[str, AdmissionLimits]
    bucket: Bucket
    backlogs: Backlogs
    clock: Callable[[], float] = time.time
    read_every_seconds: float = BACKLOG_READ_SECONDS

    def admit(self, saga_type: str) -> None:
        """Take a start of `saga_type`, or raise `StartRefused`; either is counted (saga_type, reason)."""
        try:
            self._admit(saga_type)
        except StartRefused as refused:
            _count(metric_names.STARTS_REFUSED, saga_type, reason=refused.reason)
            raise
        _count(metric_names.STARTS_ADMITTED, saga_type)

    def _admit(self, saga_type: str) -> None:
        limits = self.limits[saga_type]
        now_us = int(self.clock() * MICROSECONDS)
        read_every_us = int(self.read_every_seconds * MICROSECONDS)
        room = self.bucket.take_room(saga_type, limits, now_us, read_every_us, lambda: self._fullest(saga_type))
        if room is False:
            raise StartRefused(
                saga_type,
                "backlog",
                # Spread the retries: a crowd told the same second comes back as one burst.
                math.ceil(self.read_every_seconds * (1 + random.random())),
                f"its participant queues hold {limits.max_queue_backlog} or more commands in one queue, waiting or "
                "being worked, with the starts admitted since they were read",
            )
        # The time again: reading the queues may have taken a while, and the bucket is measured against now.
        wait_us = self.bucket.take(saga_type, limits, int(self.clock() * MICROSECONDS))
        if wait_us is not None:
            raise StartRefused(
                saga_type,
                "rate",
                max(1, math.ceil(wait_us / MICROSECONDS)),
                f"more than {limits.starts_per_second:g} starts per second (burst {limits.burst})",
            )

    def _fullest(self, saga_type: str) -> int | None:
        """The most commands one of the saga's participant queues holds now; None if they cannot be read."""
        try:
            queues = self.backlogs.queues(saga_type)
            if not queues:
                return None  # nothing to read: the rate alone decides
            waiting = self.backlogs.waiting(queues)
        except (ClientError, BotoCoreError) as error:
            logger.warning("queue backlog unread: admitting on the rate alone", extra={"error": repr(error)})
            return None
        return max(waiting.values(), default=0)


def _count(name: str, saga_type: str, **dimensions: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="saga_type", value=saga_type)
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


class DynamoDBBucket:
    """The admission table: per saga type, its start-rate bucket `{saga_type, tat_us}` and its backlog room
    `{saga_type: "<type>#backlog", room, read_at_us}`.

    GCRA: `tat_us` is when the bucket is empty again at the sustained rate (the theoretical arrival time). A start
    passes if tat <= now + (burst - 1) * interval, and moves tat to max(tat, now) + interval. DynamoDB cannot take the
    max in an update, so there are two conditional updates, busy (tat >= now: add an interval) and idle (tat < now, or
    no item: now + interval); the one this environment expects from its last look goes first, and a failed one returns
    the item, which says whether the other applies or the start is refused, and until when."""

    def __init__(self, table_name: str | None, *, client: Any = None) -> None:
        self.table_name = table_name  # None in a function that admits nothing (the API's reconciler)
        self._client = client
        self._last_tat: dict[str, int] = {}

    @cached_property
    def _dynamodb(self) -> Any:
        return self._client or boto3.client("dynamodb")

    def take(self, saga_type: str, limits: AdmissionLimits, now_us: int) -> int | None:
        if self.table_name is None:
            raise RuntimeError("ADMISSION_TABLE_NAME is not set: this function admits no saga")
        interval = max(1, round(MICROSECONDS / limits.starts_per_second))
        tolerance = (limits.burst - 1) * interval
        busy = self._last_tat.get(saga_type, 0) >= now_us
        try:
            for _ in range(MAX_BUCKET_TRIES):
                if busy:
                    applied, item = self._update(
                        saga_type,
                        update="SET tat_us = tat_us + :interval",
                        condition="tat_us BETWEEN :now AND :limit",
                        values={":interval": interval, ":now": now_us, ":limit": now_us + tolerance},
                    )
                else:
                    applied, item = self._update(
                        saga_type,
                        update="SET tat_us = :next",
                        condition="attribute_not_exists(tat_us) OR tat_us < :now",
                        values={":next": now_us + interval, ":now": now_us},
                    )
                tat = item.get("tat_us", 0)
                self._last_tat[saga_type] = tat
                if applied:
                    return None
                if tat > now_us + tolerance:
                    return tat - tolerance - now_us
                busy = tat >= now_us  # the other update applies (or another start just moved it): try that
        except (ClientError, BotoCoreError) as error:
            logger.warning("start-rate bucket unread: admitting on the backlog alone", extra={"error": repr(error)})
            return None
        return interval  # lost races each time: the bucket is that busy, come back after one interval

    def take_room(
        self,
        saga_type: str,
        limits: AdmissionLimits,
        now_us: int,
        read_every_us: int,
        fullest: Callable[[], int | None],
    ) -> bool | None:
        if self.table_name is None:
            raise RuntimeError("ADMISSION_TABLE_NAME is not set: this function admits no saga")
        key = f"{saga_type}{ROOM_KEY_SUFFIX}"
        fresh_after = now_us - read_every_us
        try:
            for _ in range(MAX_BUCKET_TRIES):
                taken, item = self._update(
                    key,
                    update="SET room = room - :one",
                    condition="read_at_us > :fresh_after AND room > :zero",
                    values={":one": 1, ":zero": 0, ":fresh_after": fresh_after},
                )
                if taken:
                    return True
                if item.get("read_at_us", fresh_after) > fresh_after:
                    return False  # a fresh reading, and its room is spent
                # No reading, or a stale one: read the queues and start the room over. One environment's write wins;
                # the others then take from the room it wrote.
                waiting = fullest()
                if waiting is None:
                    return None
                room = limits.max_queue_backlog - waiting
                written, _ = self._update(
                    key,
                    update="SET room = :room, read_at_us = :now",
                    condition="attribute_not_exists(read_at_us) OR read_at_us <= :fresh_after",
                    values={":room": max(room - 1, 0), ":now": now_us, ":fresh_after": fresh_after},
                )
                if written:
                    return room > 0
        except (ClientError, BotoCoreError) as error:
            logger.warning("backlog room unread: admitting on the rate alone", extra={"error": repr(error)})
            return None
        return False  # lost every race for the room: it is that contended

    def _update(self, key: str, *, update: str, condition: str, values: dict[str, int]) -> tuple[bool, dict[str, int]]:
        """Whether the update applied, and the item's numbers after it (or as the refused update found them)."""
        try:
            answer = self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"saga_type": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={name: {"N": str(value)} for name, value in values.items()},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False, _numbers(error.response.get("Item") or {})
        return True, _numbers(answer["Attributes"])


def _numbers(item: dict[str, Any]) -> dict[str, int]:
    return {name: int(value["N"]) for name, value in item.items() if "N" in value}


class SqsBacklogs:
    """The saga's participant queues, read from its deployed state machine (or for a choreographed saga from its
    command queues parameter), and how many commands wait in each."""

    def __init__(
        self,
        state_machines: dict[str, str],
        *,
        queue_parameters: dict[str, str] | None = None,
        sfn_client: Any = None,
        sqs_client: Any = None,
        ssm_client: Any = None,
    ) -> None:
        self.state_machines = state_machines  # saga type -> state machine ARN (orchestrated sagas)
        self.queue_parameters = queue_parameters or {}  # saga type -> SSM parameter name (choreographed sagas)
        self._sfn_client = sfn_client
        self._sqs_client = sqs_client
        self._ssm_client = ssm_client
        self._queues: dict[str, list[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="backlog")

    @cached_property
    def _sfn(self) -> Any:
        return self._sfn_client or boto3.client("stepfunctions")

    @cached_property
    def _sqs(self) -> Any:
        return self._sqs_client or boto3.client("sqs")

    @cached_property
    def _ssm(self) -> Any:
        return self._ssm_client or boto3.client("ssm")

    def queues(self, saga_type: str) -> list[str]:
        if saga_type not in self._queues:
            if saga_type in self.state_machines:
                definition = json.loads(
                    self._sfn.describe_state_machine(stateMachineArn=self.state_machines[saga_type])["definition"]
                )
                self._queues[saga_type] = command_queues(definition)
            elif saga_type in self.queue_parameters:
                parameter = self._ssm.get_parameter(Name=self.queue_parameters[saga_type])["Parameter"]
                self._queues[saga_type] = [str(url) for url in json.loads(parameter["Value"])]
            else:
                return []  # no queues known: admitted on its rate alone
        return self._queues[saga_type]

    def waiting(self, queue_urls: list[str]) -> dict[str, int]:
        return dict(zip(queue_urls, self._pool.map(self._waiting, queue_urls), strict=True))

    def _waiting(self, queue_url: str) -> int:
        # Received ones count too: a batch's commands are worked one after another, and the last of a batch waits
        # while its timeout runs just as one still on the queue does.
        attributes = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(BACKLOG_ATTRIBUTES))
        return sum(int(attributes["Attributes"][name]) for name in BACKLOG_ATTRIBUTES)


def command_queues(definition: dict[str, Any]) -> list[str]:
    """The queue URL of every callback task of a state machine definition, the first state's first, once each."""
    states = definition["States"]
    ordered = [definition["StartAt"], *(name for name in states if name != definition["StartAt"])]
    urls: list[str] = []
    for name in ordered:
        state = states[name]
        url = (state.get("Parameters") or {}).get("QueueUrl")
        if state.get("Resource") == CALLBACK_RESOURCE and isinstance(url, str) and url not in urls:
            urls.append(url)
    return urls

"""Admission control at the front door: a start the saga type cannot take now is answered 429 with Retry-After before
anything is written; the participant queues' backlog is read at most once a second, and the room it leaves is shared by
every execution environment; the start-rate bucket (GCRA) too. Both live in DynamoDB (on moto here)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from saga_api.admission import (
    Admission,
    AdmissionLimits,
    DynamoDBBucket,
    SqsBacklogs,
    StartRefused,
    command_queues,
)
from saga_records import metric_names
from statemachines import compile_saga, load_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.unit.api.fakes import FakeBacklogs, FakeBucket

pytestmark = pytest.mark.unit

FIRST, SECOND = "https://sqs/OrderFulfillment-first", "https://sqs/OrderFulfillment-second"


def _refused(api, order, **headers) -> tuple[int, dict[str, Any], dict[str, str]]:
    return api.call("POST", "/orders", body=order, headers=headers or None)


def test_a_start_over_the_queue_backlog_is_refused_429_before_anything_is_written(api, order):
    # Given ten commands waiting in the second step's queue of the order saga (its limit here)
    api.backlogs.depth[SECOND] = 10
    # When an order is posted
    status, answer, headers = _refused(api, order)
    # Then 429 with a Retry-After of a second or two, naming the saga type; nothing written, started, or taken
    assert status == 429
    assert headers["Retry-After"] in ("1", "2")
    assert "OrderFulfillment" in answer["message"]
    assert answer["reason"] == "backlog"
    assert answer["errors"][0]["field"] == "saga_type"
    assert (api.records.items, api.sfn.calls, api.bucket.taken) == ({}, 0, [])


def test_a_start_over_the_rate_is_refused_with_the_seconds_until_one_passes(api, order):
    # Given a bucket that takes the next start in 2.3 s
    api.bucket.refuse_for_us = 2_300_000
    # When an order is posted / Then 429 telling the client to come back in 3 s, and nothing written
    status, answer, headers = _refused(api, order)
    assert (status, headers["Retry-After"], answer["reason"]) == (429, "3", "rate")
    assert (api.records.items, api.sfn.calls) == ({}, 0)


def test_a_duplicate_of_a_taken_saga_gets_its_answer_whatever_the_load(api, order):
    # Given an order accepted, then the saga type over its limits
    assert _refused(api, order)[0] == 202
    api.bucket.refuse_for_us = 5_000_000
    # When the same request comes again / Then the same 202; the same id with another body is still a 409
    assert _refused(api, order)[:2] == (202, {**_refused(api, order)[1]})
    other = {**order, "payment": {"card_token": "tok_other"}}
    assert _refused(api, other)[0] == 409
    # And a new order is refused
    assert _refused(api, {**order, "order_id": "ord-0002"})[0] == 429
    assert list(api.records.items) == [order["order_id"]]
    assert len(api.sfn.executions) == 1


def test_each_saga_type_is_admitted_on_its_own_queues(api, order, parcel):
    api.backlogs.depth[FIRST] = 50
    assert _refused(api, order)[0] == 429
    assert api.call("POST", "/parcels", body=parcel, headers={"Idempotency-Key": "parcel-1"})[0] == 202


def test_an_unreadable_backlog_admits_on_the_rate_alone():
    class Unreadable(FakeBacklogs):
        def waiting(self, queue_urls):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueAttributes")

    bucket = FakeBucket()
    Admission({"OrderFulfillment": AdmissionLimits(100, 100, 10)}, bucket, Unreadable()).admit("OrderFulfillment")
    assert bucket.taken == ["OrderFulfillment"]


def test_admitted_and_refused_starts_are_counted_by_saga_type_and_reason(api, order, capsys):
    assert _refused(api, order)[0] == 202
    api.bucket.refuse_for_us = 1
    assert _refused(api, {**order, "order_id": "ord-0002"})[0] == 429
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    counted = {
        (name, line["saga_type"], line.get("reason"))
        for line in lines
        for name in (metric_names.STARTS_ADMITTED, metric_names.STARTS_REFUSED)
        if name in line
    }
    assert counted == {
        (metric_names.STARTS_ADMITTED, "OrderFulfillment", None),
        (metric_names.STARTS_REFUSED, "OrderFulfillment", "rate"),
    }
    # The dimensions the dashboard reads them by
    dimensions = {tuple(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) for line in lines}
    assert dimensions == {metric_names.ADMISSION_DIMENSIONS, (*metric_names.ADMISSION_DIMENSIONS, "reason")}


# --- the start-rate bucket on DynamoDB (moto) ------------------------------------------------------------------------


@pytest.fixture
def bucket_table(aws_env):
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="admission",
            KeySchema=[{"AttributeName": "saga_type", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "saga_type", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield "admission"


NOW = 1_800_000_000_000_000  # microseconds
TEN_PER_SECOND_BURST_THREE = AdmissionLimits(starts_per_second=10, burst=3, max_queue_backlog=10)


def test_the_bucket_takes_a_burst_then_the_rate_and_says_when_the_next_start_passes(bucket_table):
    bucket = DynamoDBBucket(bucket_table)
    # Given 10 starts per second (one per 100 ms) and a burst of 3 / When 5 come at once
    answers = [bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW) for _ in range(5)]
    # Then 3 pass, and the others are told: in 100 ms
    assert answers == [None, None, None, 100_000, 100_000]
    # And one more passes each 100 ms
    assert bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW + 100_000) is None
    assert bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW + 150_000) == 50_000
    # And after a quiet while the whole burst is there again
    later = NOW + 10_000_000
    assert [bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, later) for _ in range(4)] == [None, None, None, 100_000]


def test_every_environment_draws_on_the_same_bucket_and_saga_types_on_their_own(bucket_table):
    first, second = DynamoDBBucket(bucket_table), DynamoDBBucket(bucket_table)
    assert first.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW) is None
    assert second.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW) is None
    assert first.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW) is None
    assert second.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW) == 100_000
    assert second.take("Parcels", TEN_PER_SECOND_BURST_THREE, NOW) is None


def test_an_admitted_start_costs_one_conditional_write(bucket_table):
    client = boto3.client("dynamodb")
    calls: list[str] = []
    client.meta.events.register("provide-client-params.dynamodb", lambda model, **_: calls.append(model.name))
    bucket = DynamoDBBucket(bucket_table, client=client)
    bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW)  # the first one finds no item: the idle update
    calls.clear()
    for offset in (0, 100_000, 200_000):  # at the rate: the bucket never runs dry, the busy update applies at once
        assert bucket.take("Orders", TEN_PER_SECOND_BURST_THREE, NOW + offset) is None
    assert calls == ["UpdateItem"] * 3


# --- which queues: the deployed state machine's ----------------------------------------------------------------------


def test_the_queues_are_every_callback_tasks_the_first_steps_first():
    definition = load_definition(SAGA_FILE)
    asl = json.loads(
        json.dumps(compile_saga(definition)).replace("${", "https://sqs/").replace("QueueUrl}", "QueueUrl")
    )
    queues = command_queues(asl)
    expected = [
        f"https://sqs/{command}QueueUrl" for step in definition.steps for command in (step.action, step.compensation)
    ]
    assert queues[0] == f"https://sqs/{definition.steps[0].action}QueueUrl"
    assert sorted(queues) == sorted(expected)


# --- which queues: a choreographed saga's, from the parameter the stack writes (moto) ---------------------------------


class CountingSsm:
    """SSM as the API reads it, counting the reads."""

    def __init__(self) -> None:
        self.client, self.reads = boto3.client("ssm"), 0

    def get_parameter(self, **kwargs):
        self.reads += 1
        return self.client.get_parameter(**kwargs)


def test_a_choreographed_sagas_queues_are_read_from_its_parameter_once_with_their_backlog(aws_env):
    with mock_aws():
        # Given a choreographed saga's two command queues, three commands waiting in the second, and the parameter
        # that lists them (as infra/constructs/admission.py writes it)
        sqs = boto3.client("sqs")
        urls = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("ReserveItems", "ReleaseReservation")]
        for _ in range(3):
            sqs.send_message(QueueUrl=urls[1], MessageBody="{}")
        boto3.client("ssm").put_parameter(
            Name="/SagaStack/admission/Chor/command-queues", Value=json.dumps(urls), Type="String"
        )
        ssm = CountingSsm()
        backlogs = SqsBacklogs(
            {}, queue_parameters={"Chor": "/SagaStack/admission/Chor/command-queues"}, ssm_client=ssm
        )
        # When its queues are asked for twice, and their backlog read
        assert backlogs.queues("Chor") == urls
        assert backlogs.queues("Chor") == urls
        waiting = backlogs.waiting(backlogs.queues("Chor"))
    # Then the parameter was read once (per execution environment), and the backlog is each queue's
    assert ssm.reads == 1
    assert waiting == {urls[0]: 0, urls[1]: 3}


def test_a_choreographed_saga_over_its_backlog_is_refused_like_an_orchestrated_one(aws_env):
    with mock_aws():
        # Given a choreographed saga whose command queue holds its limit of commands
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="ReserveItems")["QueueUrl"]
        for _ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody="{}")
        boto3.client("ssm").put_parameter(Name="/p", Value=json.dumps([url]), Type="String")
        admission = Admission(
            {"Chor": AdmissionLimits(100, 100, 2)}, FakeBucket(), SqsBacklogs({}, queue_parameters={"Chor": "/p"})
        )
        # When a start comes / Then it is refused for the backlog
        with pytest.raises(StartRefused) as refused:
            admission.admit("Chor")
    assert refused.value.reason == "backlog"


def test_a_saga_with_no_queues_to_read_is_admitted_on_its_rate_alone():
    # Given a saga type whose queues are unknown (no state machine, no parameter), a backlog limit of 2
    bucket = FakeBucket()
    admission = Admission({"Other": AdmissionLimits(100, 100, 2)}, bucket, SqsBacklogs({}), clock=lambda: 1.0)
    # When five starts come within the same second
    for _ in range(5):
        admission.admit("Other")
    # Then none is refused for a backlog nobody read: the rate took all five
    assert bucket.taken == ["Other"] * 5


# --- the backlog room on DynamoDB (moto) ----------------------------------------------------------------------------

SECOND_US = 1_000_000


class Readings:
    """The fullest queue's count, as the queues would answer, and how many times they were read."""

    def __init__(self, waiting: int | None) -> None:
        self.waiting, self.reads = waiting, 0

    def __call__(self) -> int | None:
        self.reads += 1
        return self.waiting


def test_the_room_a_reading_leaves_is_shared_by_every_environment(bucket_table):
    # Given 8 commands in the fullest queue (limit 10), and three execution environments
    readings = Readings(8)
    environments = [DynamoDBBucket(bucket_table) for _ in range(3)]
    # When each of them takes starts within the same second
    taken = [
        environment.take_room("Orders", TEN_PER_SECOND_BURST_THREE, NOW + n, SECOND_US, readings)
        for n, environment in enumerate(environments * 2)
    ]
    # Then two pass in all (8 + 2 = 10), the others are refused, after a single reading of the queues
    assert taken == [True, True, False, False, False, False]
    assert readings.reads == 1


def test_the_queues_are_read_again_once_the_reading_is_a_second_old(bucket_table):
    readings, bucket = Readings(9), DynamoDBBucket(bucket_table)
    assert bucket.take_room("Orders", TEN_PER_SECOND_BURST_THREE, NOW, SECOND_US, readings) is True
    assert bucket.take_room("Orders", TEN_PER_SECOND_BURST_THREE, NOW + SECOND_US // 2, SECOND_US, readings) is False
    assert readings.reads == 1
    # When the participants drained meanwhile / Then the next reading gives room again
    readings.waiting = 0
    assert bucket.take_room("Orders", TEN_PER_SECOND_BURST_THREE, NOW + SECOND_US, SECOND_US, readings) is True
    assert readings.reads == 2


def test_a_full_queue_leaves_no_room_and_an_unreadable_one_leaves_the_decision_to_the_rate(bucket_table):
    bucket = DynamoDBBucket(bucket_table)
    assert bucket.take_room("Orders", TEN_PER_SECOND_BURST_THREE, NOW, SECOND_US, Readings(12)) is False
    assert bucket.take_room("Parcels", TEN_PER_SECOND_BURST_THREE, NOW, SECOND_US, Readings(None)) is None


def test_a_start_with_room_and_rate_costs_two_conditional_writes(bucket_table):
    client = boto3.client("dynamodb")
    calls: list[str] = []
    client.meta.events.register("provide-client-params.dynamodb", lambda model, **_: calls.append(model.name))
    bucket = DynamoDBBucket(bucket_table, client=client)
    admission = Admission(
        {"Orders": AdmissionLimits(100, 100, 10)}, bucket, FakeBacklogs(), clock=lambda: NOW / SECOND_US
    )
    admission.admit("Orders")  # the first one reads the queues and finds no items
    calls.clear()
    admission.admit("Orders")
    assert calls == ["UpdateItem", "UpdateItem"]

"""The stuck-saga detector on a moto saga table: exactly the stuck and parked sagas, each incident reported once."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from saga_operations.detector import StuckSagaDetector, iso
from saga_operations.stuck_queue import StuckSagaQueue

pytestmark = pytest.mark.unit

DEADLINES = {"OrderFulfillment": 3600, "Express": 600}  # seconds
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


class CollectingSink:
    """The stuck-sagas queue, as a list (optionally failing the next send)."""

    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.fail_next = False

    def send(self, report: dict) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("queue unavailable")
        self.reports.append(report)


@pytest.fixture
def sink():
    return CollectingSink()


@pytest.fixture
def detector(records, sink, now):
    return StuckSagaDetector(records, sink, deadlines=DEADLINES, clock=lambda: now)


@pytest.fixture
def mixed_sagas(put_saga):
    """Sagas in every situation; the ids say which the detector must find."""
    put_saga("stuck-pending", "PENDING", age=2 * HOUR)
    put_saga("stuck-compensating", "COMPENSATING", age=3 * HOUR, current_step="reserve_inventory")
    put_saga("stuck-started", "STARTED", age=2 * HOUR, current_step=None)
    put_saga("stuck-express", "PENDING", age=20 * MINUTE, saga_type="Express")  # its own, shorter deadline
    put_saga(
        "parked-compensation",
        "COMPENSATION_FAILED",
        age=5 * MINUTE,
        failed_step="create_shipment",
        compensation_error="Shipping.CarrierDown",
        compensation_cause="carrier API refused the cancellation",
        error="Notification.RecipientRejected",
    )
    put_saga("parked-forward", "FORWARD_RECOVERY_FAILED", age=MINUTE, failed_step="send_confirmation")
    put_saga("parked-execution", "EXECUTION_FAILED", age=MINUTE, error="States.Timeout")
    put_saga("fine-young-pending", "PENDING", age=30 * MINUTE)
    put_saga("fine-young-compensating", "COMPENSATING", age=59 * MINUTE)
    put_saga("fine-unknown-type", "PENDING", age=50 * MINUTE, saga_type="Retired")  # the longest deadline applies
    put_saga("fine-completed", "COMPLETED", age=10 * HOUR)
    put_saga("fine-failed", "FAILED", age=10 * HOUR)
    put_saga("fine-resolved", "RESOLVED", age=10 * HOUR)


def test_finds_exactly_the_sagas_past_their_deadline_and_the_parked_ones(detector, mixed_sagas):
    # When the detector looks
    found = {saga.saga_id: saga.reason for saga in detector.find()}
    # Then it found every stuck and parked saga and nothing else
    assert found == {
        "stuck-pending": "past_deadline",
        "stuck-compensating": "past_deadline",
        "stuck-started": "past_deadline",
        "stuck-express": "past_deadline",
        "parked-compensation": "parked",
        "parked-forward": "parked",
        "parked-execution": "parked",
    }


def test_deadlines_follow_the_local_clock(records, put_saga, now):
    # Given a saga 40 s old and a clock running 100 times faster (the 3600 s deadline lasts 36 s)
    put_saga("slow", "PENDING", age=timedelta(seconds=40))
    put_saga("quick", "PENDING", age=timedelta(seconds=20))
    detector = StuckSagaDetector(records, None, deadlines=DEADLINES, time_scale=0.01, clock=lambda: now)
    # Then only the saga older than the scaled deadline is stuck
    assert [saga.saga_id for saga in detector.find()] == ["slow"]


def test_each_incident_is_reported_once_with_what_an_operator_needs(detector, sink, mixed_sagas):
    # When the detector runs twice
    first = detector.run()
    second = detector.run()
    # Then every stuck saga went to the queue once; the second run still counts them but reports nothing new
    assert sorted(report["saga_id"] for report in sink.reports) == sorted(saga.saga_id for saga in first.stuck)
    assert len(first.reported) == 7
    assert second.reported == []
    assert len(second.stuck) == 7
    report = next(report for report in sink.reports if report["saga_id"] == "parked-compensation")
    assert report["status"] == "COMPENSATION_FAILED"
    assert report["step"] == "create_shipment"
    assert report["error"] == "Shipping.CarrierDown"  # the compensation's error, not the one that started it
    assert report["cause"] == "carrier API refused the cancellation"
    assert report["execution_arn"].endswith(":parked-compensation")


def test_a_new_incident_of_the_same_saga_is_reported_again(detector, sink, put_saga, now):
    # Given a parked saga already reported
    put_saga("again", "COMPENSATION_FAILED", age=HOUR, failed_step="process_payment")
    detector.run()
    # When an operator retried it and it parked again, later, at another step
    put_saga("again", "COMPENSATION_FAILED", age=HOUR, failed_step="reserve_inventory", updated_at=iso(now))
    detector.run()
    # Then both incidents were reported
    assert [(r["saga_id"], r["step"]) for r in sink.reports] == [
        ("again", "process_payment"),
        ("again", "reserve_inventory"),
    ]


def test_a_report_that_could_not_be_sent_is_sent_by_the_next_run(detector, sink, put_saga):
    put_saga("unlucky", "EXECUTION_FAILED", age=HOUR)
    sink.fail_next = True
    # When sending fails, the run fails (the Lambda error alarm fires) and the claim is released
    with pytest.raises(ConnectionError):
        detector.run()
    assert sink.reports == []
    # Then the next run reports it
    assert [saga.saga_id for saga in detector.run().reported] == ["unlucky"]


def test_counts_sagas_per_non_terminal_status(detector, mixed_sagas):
    counts = detector.run().in_status
    assert counts["PENDING"] == 4
    assert counts["COMPENSATING"] == 2
    assert counts["COMPENSATION_FAILED"] == 1
    assert "COMPLETED" not in counts


def test_reports_land_on_the_stuck_sagas_queue_as_json(records, put_saga, now):
    # Given the real queue client on moto
    queue_url = boto3.client("sqs").create_queue(QueueName="stuck-sagas")["QueueUrl"]
    put_saga("parked", "COMPENSATION_FAILED", age=MINUTE, failed_step="process_payment", compensation_error="E")
    detector = StuckSagaDetector(records, StuckSagaQueue(queue_url), deadlines=DEADLINES, clock=lambda: now)
    # When it runs
    detector.run()
    # Then one message names the saga, its step, status, error and execution
    (message,) = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(message["Body"])
    assert {key: body[key] for key in ("saga_id", "status", "step", "error")} == {
        "saga_id": "parked",
        "status": "COMPENSATION_FAILED",
        "step": "process_payment",
        "error": "E",
    }
    assert body["execution_arn"].endswith(":parked")


def test_refuses_to_run_without_deadlines(records):
    with pytest.raises(ValueError, match="deadlines"):
        StuckSagaDetector(records, None, deadlines={})


def test_the_run_publishes_stuck_sagas_and_sagas_per_status(detector, mixed_sagas, capsys):
    from aws_lambda_powertools.metrics import EphemeralMetrics

    from saga_operations.observability import publish_detection

    # Given the detector's metrics object / When a run's findings are published
    metrics = EphemeralMetrics(namespace="Sagas", service="SagaOperations")
    publish_detection(metrics, detector.run())
    metrics.flush_metrics()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    # Then StuckSagas counts every stuck saga and each non-terminal status has its gauge
    (summary,) = [line for line in lines if "StuckSagas" in line]
    assert summary["StuckSagas"] == [7.0]
    assert summary["service"] == "SagaOperations"
    by_status = {line["status"]: line["SagasInStatus"] for line in lines if "SagasInStatus" in line}
    assert by_status["PENDING"] == [4.0]
    assert by_status["COMPENSATION_FAILED"] == [1.0]

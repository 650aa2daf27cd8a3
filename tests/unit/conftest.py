"""Unit-test fixtures: moto started before any client is created."""

import pytest
from moto import mock_aws


@pytest.fixture
def moto_sfn(aws_env):
    """moto with Step Functions executing definitions (the local runtime's configuration)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def moto_cloudformation(aws_env):
    """moto for the CloudFormation change-set path the CDK CLI takes (tests/unit/test_cfn_server_workarounds.py)."""
    with mock_aws():
        yield


@pytest.fixture
def settled_soak_evidence():
    """What a soak that went right leaves behind: one saga completed, one compensated, one parked and flagged; its
    dead-lettered command in an alarmed DLQ; every other command answered or consumed after its timeout."""
    from saga_testkit.soak_checks import DeadLetter, DlqAlarm, SentCommand, SoakEvidence

    queue = "https://sqs.example/ReserveItemsQueue"
    return SoakEvidence(
        accepted=["s-ok", "s-failed", "s-parked"],
        statuses={"s-ok": "COMPLETED", "s-failed": "FAILED", "s-parked": "COMPENSATION_FAILED"},
        commands=[
            SentCommand("s-ok", "reserve", "action", queue, "t1", "succeeded"),
            SentCommand("s-failed", "reserve", "action", queue, "t2", "timed_out"),
            SentCommand("s-parked", "reserve", "action", queue, "t3", "failed"),
            SentCommand("s-parked", "reserve", "compensation", queue, "t4", "timed_out"),
        ],
        left_on_queues={queue: 0},
        dead_letters=[DeadLetter("ReserveItemsDLQ", queue, "s-parked", "reserve", "compensation", "t4")],
        dlq_alarms=[DlqAlarm("ReserveItemsDLQ", 1, "ReserveItemsDLQDepth", "ALARM")],
        stuck_reports={"s-parked": {"COMPENSATION_FAILED"}},
        invariant_problems=[],
    )

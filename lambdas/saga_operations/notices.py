"""Where the detector sends each new incident: the stuck-sagas queue operators work from, and a notice on the alarm
topic that reaches a human (e-mail, chat, pager) for every parked or overdue saga, even while the StuckSagas alarm is
already in ALARM and CloudWatch sends nothing new.

The only SNS code of the detector. A notice names the saga, its type, status, step and error, and the operator CLI
commands that deal with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Protocol

import boto3

SUBJECT_LIMIT = 100  # SNS: at most 100 printable ASCII characters, no line breaks
CAUSE_LIMIT = 2_000  # characters of the cause quoted in a notice (the saga record keeps all of it)


class ReportSink(Protocol):
    def send(self, report: dict[str, Any]) -> None: ...


class AllOf:
    """Send a report to every sink in order; a failing one fails the send (the detector then retries it next run)."""

    def __init__(self, sinks: Sequence[ReportSink]) -> None:
        self.sinks = list(sinks)

    def send(self, report: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.send(report)


def notice_subject(report: dict[str, Any]) -> str:
    text = f"Saga needs a human: {report['saga_type']} {report['saga_id']} {report['status']}"
    printable = "".join(char if " " <= char <= "~" else "?" for char in text)
    return printable if len(printable) <= SUBJECT_LIMIT else printable[: SUBJECT_LIMIT - 3] + "..."


def notice_text(report: dict[str, Any]) -> str:
    cause = report.get("cause") or ""
    if len(cause) > CAUSE_LIMIT:
        cause = cause[:CAUSE_LIMIT] + " [...]"
    why = "parked for a human" if report["reason"] == "parked" else "past its deadline, still in flight"
    saga_id = report["saga_id"]
    return "\n".join(
        [
            f"Saga {saga_id} ({report['saga_type']}) is {report['status']}: {why}.",
            "",
            f"Step:      {report.get('step') or '-'}",
            f"Error:     {report.get('error') or '-'}",
            f"Cause:     {cause or '-'}",
            f"Execution: {report.get('execution_arn') or '-'}",
            f"Since:     {report['updated_at']} (started {report['created_at']})",
            "",
            f"Inspect:   python -m saga_ops show {saga_id}",
            f'Finish:    python -m saga_ops resume {saga_id} --retry --reason "..."   (or --resolve)',
        ]
    )


class IncidentNotices:
    """One SNS message per incident on the alarm topic."""

    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    @cached_property
    def _sns(self) -> Any:
        return boto3.client("sns")

    def send(self, report: dict[str, Any]) -> None:
        attributes = {
            name: {"DataType": "String", "StringValue": str(report[name])}
            for name in ("saga_id", "saga_type", "status", "reason")
            if report.get(name)
        }
        self._sns.publish(
            TopicArn=self.topic_arn,
            Subject=notice_subject(report),
            Message=notice_text(report),
            MessageAttributes=attributes,
        )

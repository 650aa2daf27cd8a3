"""Alarms and the operations dashboard, over whatever sagas, participants, functions and APIs the stack has.

Every alarm is named "<stack>/<alarm>" and notifies the alarm topic (infra/constructs/notifications.py) when it
fires and again when it clears. Every alarm reads one metric (CloudWatch allows 10 per alarm expression, so nothing
here sums over steps or sagas). Alarmed:

- the depth of every DLQ; the age of the oldest command in every participant queue, against its step's heartbeat
  window;
- executions failed / timed out / aborted / throttled per state machine;
- sagas stuck or parked, and sagas whose compensation failed for good (COMPENSATION_FAILED, a gauge the detector
  publishes: a transient failure its retries heal never gets there);
- the detector not running (its invocations, missing data breaching);
- errors and throttles of every function (the execution-status reconciler's included), and the records of partial
  batches a participant handed back to SQS (Lambda's Errors only counts a batch that failed whole);
- 5XX answers and p99 latency of every API.

Custom metrics come from Powertools (EMF) under the names in saga_records.metric_names. Dashboard lines of sparse
metrics are drawn as MAX([metric, TIME_SERIES(0)]): 0 where nothing happened, not a gap.

Dashboards: one for the stack (`<stack>-sagas`: every saga's executions and admitted and refused starts, sagas by
status, stuck sagas, the services' batches and shed stale commands, the APIs, the operations DLQs) and one per saga
(`<stack>-<saga>`: its starts admitted and refused, its steps' latency, failure rate and compensations, its commands'
queue ages and DLQ depths). A saga has at most 40 steps, so its dashboard stays within
CloudWatch's quotas whatever the number of sagas; a graph whose lines would pass MAX_METRICS_PER_GRAPH is split.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants
from infra.constructs.notifications import AlarmTopic, alarm_name
from infra.constructs.participant import CommandRef
from saga_records import IN_FLIGHT_STATUSES, PARKED_STATUSES, SagaStatus, metric_names
from statemachines import SagaDefinition

PERIOD = Duration.minutes(constants.ALARM_PERIOD_MINUTES)
DLQ_PERIOD = Duration.minutes(constants.DLQ_ALARM_PERIOD_MINUTES)
QUEUE_AGE_PERIOD = Duration.minutes(constants.QUEUE_AGE_PERIOD_MINUTES)
NAMESPACE = constants.POWERTOOLS_METRICS_NAMESPACE
# CloudWatch dashboard quotas: 500 widgets per dashboard, 500 metrics per graph, 2,500 metrics per dashboard (every
# metric and expression of a graph counts, the hidden ones an expression reads included).
MAX_WIDGETS_PER_DASHBOARD = 500
MAX_METRICS_PER_GRAPH = 500
MAX_METRICS_PER_DASHBOARD = 2_500
GRAPH_WIDTH = 12  # of the dashboard's 24 columns
ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
BELOW = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD


@dataclass(frozen=True)
class StepMetrics:
    """One step's command as the participant toolkit labels its metrics."""

    service: str
    step: str
    kind: str  # action | compensation

    def metric(self, name: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.service, "step": self.step, "kind": self.kind},
            statistic=statistic,
            period=PERIOD,
            label=label or self.step,
        )


@dataclass(frozen=True)
class SagaMonitoring:
    """What one saga's dashboard shows: its steps' metrics and its commands' queues (labels of `command_queues`)."""

    name: str
    steps: Sequence[StepMetrics]
    command_queues: Sequence[str]

    @classmethod
    def of(cls, definition: SagaDefinition) -> SagaMonitoring:
        return cls(
            name=definition.name,
            steps=[
                StepMetrics(service=step.service, step=step.name, kind=kind)
                for step in definition.steps
                for kind in (["action", "compensation"] if step.compensation else ["action"])
            ],
            command_queues=[
                CommandRef(step.service, command).label for step in definition.steps for command in step.commands
            ],
        )


@dataclass(frozen=True)
class CommandQueue:
    """A participant command's queue and the shortest heartbeat window of the steps that send it (seconds)."""

    queue: sqs.IQueue
    heartbeat_seconds: int

    @property
    def age_alarm_seconds(self) -> int:
        return max(1, int(self.heartbeat_seconds * constants.QUEUE_AGE_ALARM_SHARE_OF_HEARTBEAT))


# A metric with a label renders, in an alarm, as a metric-math query: the alarms use them without.
def operations_metric(name: str, statistic: str, *, label: str | None = None, **dimensions: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": constants.OPERATIONS_SERVICE, **dimensions},
        statistic=statistic,
        period=PERIOD,
        label=label,
    )


def batch_records_failed(service: str, *, label: str | None = None) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=metric_names.BATCH_RECORDS_FAILED,
        dimensions_map={"service": service},
        statistic="Sum",
        period=PERIOD,
        label=label,
    )


def participant_metric(name: str, service: str, *, label: str | None = None) -> cloudwatch.Metric:
    """A per-batch count of a participant (dimension service only)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic="Sum",
        period=PERIOD,
        label=label,
    )


def admission_metric(name: str, saga: str, *, reason: str | None = None) -> cloudwatch.Metric:
    """Starts of a saga type admitted, or refused for `reason`, by the API's admission control."""
    dimensions = {"saga_type": saga, **({"reason": reason} if reason else {})}
    return cloudwatch.Metric(
        namespace=NAMESPACE, metric_name=name, dimensions_map=dimensions, statistic="Sum", period=PERIOD
    )


def _admission(zero_filled: ZeroFilled, saga: str, prefix: str = "") -> list[cloudwatch.IMetric]:
    return [
        zero_filled(admission_metric(metric_names.STARTS_ADMITTED, saga), f"{prefix}admitted"),
        *(
            zero_filled(
                admission_metric(metric_names.STARTS_REFUSED, saga, reason=reason), f"{prefix}refused ({reason})"
            )
            for reason in metric_names.REFUSAL_REASONS
        ),
    ]


class ZeroFilled:
    """Dashboard lines that show 0 where a sparse metric has no data (a gap, or no line at all, otherwise)."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    def __call__(self, metric: cloudwatch.IMetric, label: str, period: Duration = PERIOD) -> cloudwatch.MathExpression:
        # Each metric of a graph needs an id of its own.
        metric_id = f"z{next(self._ids)}"
        return cloudwatch.MathExpression(
            expression=f"MAX([{metric_id}, TIME_SERIES(0)])",
            using_metrics={metric_id: metric},
            label=label,
            period=period,
        )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: AlarmTopic,
        state_machines: Mapping[str, sfn.IStateMachine],
        command_queues: Mapping[str, CommandQueue],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
        participant_services: Sequence[str],
        detector: lambda_.IFunction,
        apis: Mapping[str, apigw.RestApi],
        sagas: Sequence[SagaMonitoring],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = topic.topic
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        action = cloudwatch_actions.SnsAction(self.topic)

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            description: str,
            *,
            threshold: float = 0,
            comparison: cloudwatch.ComparisonOperator = ABOVE,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
            periods: int = 1,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                alarm_name=alarm_name(self, name),
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=periods,
                treat_missing_data=missing,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms[name] = created

        for label, queue in dead_letter_queues.items():
            alarm(
                f"{label}Depth",
                queue.metric_approximate_number_of_messages_visible(period=DLQ_PERIOD, statistic="Maximum"),
                f"Messages wait in {label}: inspect them with `saga_ops dlq list`, redrive with `saga_ops dlq redrive`",
            )
        for label, command in command_queues.items():
            alarm(
                f"{label}QueueAge",
                command.queue.metric_approximate_age_of_oldest_message(period=QUEUE_AGE_PERIOD, statistic="Maximum"),
                f"A {label} command has waited over {command.age_alarm_seconds} s for its participant: past "
                f"{command.heartbeat_seconds} s (the step's heartbeat window) its task times out and the saga "
                "compensates. Look for throttled or failing consumers (their alarms) or a backlog.",
                threshold=command.age_alarm_seconds,
            )
        for saga, machine in state_machines.items():
            for what, metric in (
                ("ExecutionsFailed", machine.metric_failed(period=PERIOD)),
                ("ExecutionsTimedOut", machine.metric_timed_out(period=PERIOD)),
                ("ExecutionsAborted", machine.metric_aborted(period=PERIOD)),
                ("ExecutionThrottled", machine.metric_throttled(period=PERIOD)),
            ):
                alarm(
                    f"{saga}{what}", metric, f"{saga} saga: {what} above 0. The parked sagas are in `saga_ops stuck`."
                )
        alarm(
            "StuckSagas",
            operations_metric(metric_names.STUCK_SAGAS, "Maximum"),
            "Sagas past their deadline or parked. Each one also arrives as its own notice on this topic; "
            "see `saga_ops stuck`.",
        )
        alarm(
            "CompensationFailures",
            operations_metric(metric_names.SAGAS_IN_STATUS, "Maximum", status=SagaStatus.COMPENSATION_FAILED.value),
            "A compensation failed for good (after its retries): the saga is parked as COMPENSATION_FAILED. "
            "Finish it with `saga_ops resume <saga id> --retry` or `--resolve`.",
        )
        alarm(
            "DetectorNotRunning",
            detector.metric_invocations(period=Duration.minutes(constants.DETECTOR_SILENCE_MINUTES), statistic="Sum"),
            f"The stuck-saga detector ran not once in {constants.DETECTOR_SILENCE_MINUTES} minutes: stuck and "
            "parked sagas go unreported. Check its schedule and its Errors alarm.",
            threshold=1,
            comparison=BELOW,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        for label, function in functions.items():
            alarm(f"{label}Errors", function.metric_errors(period=PERIOD), f"{label} function errors.")
            alarm(f"{label}Throttles", function.metric_throttles(period=PERIOD), f"{label} function throttles.")
        for service in participant_services:
            alarm(
                f"{service}BatchRecordsFailed",
                batch_records_failed(service),
                f"{service} handed records of a batch back to SQS (the function did not fail as a whole): they "
                "are redelivered and dead-letter after their receives. Its logs name the error.",
            )
        for label, api in apis.items():
            alarm(
                f"{label}ServerErrors",
                api.metric_server_error(period=PERIOD, statistic="Sum"),
                f"{label} answered 5XX: see its access log (status, error, integration error) and function alarms.",
            )
            alarm(
                f"{label}Latency",
                api.metric_latency(period=PERIOD, statistic="p99"),
                f"{label}: p99 latency above {constants.API_LATENCY_ALARM_MS} ms for "
                f"{constants.API_LATENCY_ALARM_PERIODS} periods of {constants.ALARM_PERIOD_MINUTES} minutes.",
                threshold=constants.API_LATENCY_ALARM_MS,
                periods=constants.API_LATENCY_ALARM_PERIODS,
            )

        stack = Stack.of(self).stack_name
        saga_queues = {label for saga in sagas for label in saga.command_queues}
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{stack}-sagas", default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(
            *_overview_widgets(
                state_machines,
                {label: queue for label, queue in dead_letter_queues.items() if _command_of(label) not in saga_queues},
                participant_services,
                apis,
            )
        )
        self.saga_dashboards: dict[str, cloudwatch.Dashboard] = {}
        for saga in sagas:
            dashboard = cloudwatch.Dashboard(
                self, f"{saga.name}Dashboard", dashboard_name=f"{stack}-{saga.name}", default_interval=Duration.hours(3)
            )
            dashboard.add_widgets(
                *_saga_widgets(
                    saga,
                    state_machines.get(saga.name),
                    {label: command_queues[label] for label in saga.command_queues},
                    {
                        label: queue
                        for label, queue in dead_letter_queues.items()
                        if _command_of(label) in saga.command_queues
                    },
                )
            )
            self.saga_dashboards[saga.name] = dashboard


def _command_of(dead_letter_label: str) -> str:
    """The command queue label a DLQ label belongs to (InventoryService.ReserveItems.DLQ -> ...ReserveItems)."""
    return dead_letter_label.removesuffix(".DLQ")


def metric_count(line: cloudwatch.IMetric) -> int:
    """Entries a line takes in a graph's metrics array: itself, and every metric an expression reads (hidden)."""
    if isinstance(line, cloudwatch.MathExpression):
        return 1 + sum(metric_count(metric) for metric in line.using_metrics.values())
    return 1


def graphs(
    title: str, left: Sequence[cloudwatch.IMetric], right: Sequence[cloudwatch.IMetric] = ()
) -> list[cloudwatch.GraphWidget]:
    """One graph, or several ("title (2/3)") when its lines would pass MAX_METRICS_PER_GRAPH."""
    lines = [("left", line) for line in left] + [("right", line) for line in right]
    chunks: list[list[tuple[str, cloudwatch.IMetric]]] = [[]]
    used = 0
    for side, line in lines:
        size = metric_count(line)
        if chunks[-1] and used + size > MAX_METRICS_PER_GRAPH:
            chunks.append([])
            used = 0
        chunks[-1].append((side, line))
        used += size
    return [
        cloudwatch.GraphWidget(
            title=title if len(chunks) == 1 else f"{title} ({number}/{len(chunks)})",
            left=[line for side, line in chunk if side == "left"],
            right=[line for side, line in chunk if side == "right"],
            width=GRAPH_WIDTH,
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


def _overview_widgets(
    state_machines: Mapping[str, sfn.IStateMachine],
    dead_letter_queues: Mapping[str, sqs.IQueue],
    participant_services: Sequence[str],
    apis: Mapping[str, apigw.RestApi],
) -> list[cloudwatch.IWidget]:
    zero_filled = ZeroFilled()
    executions = [line for saga, machine in state_machines.items() for line in _executions(zero_filled, machine, saga)]
    widgets: list[cloudwatch.IWidget] = [
        *graphs("Executions started, succeeded, failed, timed out", executions),
        *graphs(
            "Sagas by status (non-terminal)",
            [
                operations_metric(metric_names.SAGAS_IN_STATUS, "Maximum", label=status.value, status=status.value)
                for status in (*IN_FLIGHT_STATUSES, *sorted(PARKED_STATUSES))
            ],
        ),
        *graphs(
            "Stuck sagas",
            [
                operations_metric(metric_names.STUCK_SAGAS, "Maximum", label="stuck or parked"),
                zero_filled(operations_metric(metric_names.STUCK_SAGAS_REPORTED, "Sum"), "newly reported"),
            ],
        ),
        *graphs(
            "Starts admitted and refused (429) per saga",
            [line for saga in state_machines for line in _admission(zero_filled, saga, f"{saga} ")],
        ),
        *graphs(
            "Batch records handed back to SQS",
            [zero_filled(batch_records_failed(service, label=service), service) for service in participant_services],
        ),
        *graphs(
            "Stale commands shed (their task ended while they waited)",
            [
                zero_filled(participant_metric(metric_names.STALE_COMMANDS_SHED, service), service)
                for service in participant_services
            ],
        ),
        *graphs("DLQ depths (operations)", _dlq_depths(zero_filled, dead_letter_queues)),
    ]
    for label, api in apis.items():
        widgets += graphs(
            f"{label}: 4XX / 5XX answers, p99 latency (ms)",
            [
                zero_filled(api.metric_client_error(period=PERIOD, statistic="Sum"), "4XX"),
                zero_filled(api.metric_server_error(period=PERIOD, statistic="Sum"), "5XX"),
            ],
            [api.metric_latency(period=PERIOD, statistic="p99", label="p99 latency")],
        )
    return widgets


def _executions(zero_filled: ZeroFilled, machine: sfn.IStateMachine, saga: str = "") -> list[cloudwatch.IMetric]:
    prefix = f"{saga} " if saga else ""
    return [
        zero_filled(metric, f"{prefix}{what}")
        for what, metric in (
            ("started", machine.metric_started(period=PERIOD)),
            ("succeeded", machine.metric_succeeded(period=PERIOD)),
            ("failed", machine.metric_failed(period=PERIOD)),
            ("timed out", machine.metric_timed_out(period=PERIOD)),
        )
    ]


def _dlq_depths(zero_filled: ZeroFilled, dead_letter_queues: Mapping[str, sqs.IQueue]) -> list[cloudwatch.IMetric]:
    return [
        zero_filled(
            queue.metric_approximate_number_of_messages_visible(period=DLQ_PERIOD, statistic="Maximum"),
            label,
            DLQ_PERIOD,
        )
        for label, queue in dead_letter_queues.items()
    ]


def _saga_widgets(
    saga: SagaMonitoring,
    machine: sfn.IStateMachine | None,
    command_queues: Mapping[str, CommandQueue],
    dead_letter_queues: Mapping[str, sqs.IQueue],
) -> list[cloudwatch.IWidget]:
    """One saga's rows: its executions; each step's latency, failure rate and compensations; its commands' queue ages
    and DLQ depths."""
    zero_filled = ZeroFilled()
    actions = [step for step in saga.steps if step.kind == "action"]
    compensations = [step for step in saga.steps if step.kind == "compensation"]
    failure_rates = [
        cloudwatch.MathExpression(
            # 0 % when nothing ran (both filled with 0), not 0/0.
            expression=f"IF(f{index} + s{index} > 0, 100 * f{index} / (f{index} + s{index}), 0)",
            using_metrics={
                f"f{index}": zero_filled(step.metric(metric_names.STEP_FAILED, "Sum"), f"{step.step} failed"),
                f"s{index}": zero_filled(step.metric(metric_names.STEP_SUCCEEDED, "Sum"), f"{step.step} succeeded"),
            },
            label=f"{step.step} failure %",
            period=PERIOD,
        )
        for index, step in enumerate(actions)
    ]
    # A choreographed saga has no executions: its steps, queues and DLQs tell its story.
    executions = (
        []
        if machine is None
        else graphs(f"{saga.name}: executions started, succeeded, failed, timed out", _executions(zero_filled, machine))
    )
    return [
        *executions,
        *graphs(f"{saga.name}: starts admitted and refused (429), by reason", _admission(zero_filled, saga.name)),
        *graphs(
            f"{saga.name}: step latency p50 / p99 (ms)",
            [step.metric(metric_names.STEP_DURATION, "p50", f"{step.step} p50") for step in actions],
            [step.metric(metric_names.STEP_DURATION, "p99", f"{step.step} p99") for step in actions],
        ),
        *graphs(f"{saga.name}: step failure rate (%)", failure_rates),
        *graphs(
            f"{saga.name}: compensations run",
            [zero_filled(step.metric(metric_names.STEP_SUCCEEDED, "Sum"), step.step) for step in compensations],
            [
                zero_filled(step.metric(metric_names.STEP_FAILED, "Sum"), f"{step.step} failed")
                for step in compensations
            ],
        ),
        *graphs(
            f"{saga.name}: oldest command waiting per queue (s)",
            [
                zero_filled(
                    command.queue.metric_approximate_age_of_oldest_message(
                        period=QUEUE_AGE_PERIOD, statistic="Maximum"
                    ),
                    label,
                    QUEUE_AGE_PERIOD,
                )
                for label, command in command_queues.items()
            ],
        ),
        *graphs(f"{saga.name}: DLQ depths", _dlq_depths(zero_filled, dead_letter_queues)),
    ]

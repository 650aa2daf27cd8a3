"""Alarms, their notification topic and the operations dashboard.

Every alarm notifies one SNS topic (KMS-encrypted with a key CloudWatch may use, TLS-only). Alarmed: the depth of every
DLQ, executions failed / timed out / aborted / throttled per state machine, stuck sagas, compensation failures, and the
errors and throttles of every function. Custom metrics come from Powertools (EMF) under the names in
saga_records.metric_names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants
from saga_records import IN_FLIGHT_STATUSES, PARKED_STATUSES, metric_names

PERIOD = Duration.minutes(constants.ALARM_PERIOD_MINUTES)
DLQ_PERIOD = Duration.minutes(constants.DLQ_ALARM_PERIOD_MINUTES)
NAMESPACE = constants.POWERTOOLS_METRICS_NAMESPACE


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


def operations_metric(name: str, statistic: str, **dimensions: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": constants.OPERATIONS_SERVICE, **dimensions},
        statistic=statistic,
        period=PERIOD,
        label=dimensions.get("status", name),
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machines: Mapping[str, sfn.StateMachine],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
        steps: Sequence[StepMetrics],
    ) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(
            self, "AlarmTopicKey", enable_key_rotation=True, description="Encrypts the saga alarm notifications"
        )
        # CloudWatch publishes the alarms: it must be able to use the topic's key.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Saga alarms", master_key=key, enforce_ssl=True)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        action = cloudwatch_actions.SnsAction(self.topic)

        def alarm(name: str, metric: cloudwatch.IMetric, description: str) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms[name] = created

        for label, queue in dead_letter_queues.items():
            alarm(
                f"{label}Depth",
                queue.metric_approximate_number_of_messages_visible(period=DLQ_PERIOD, statistic="Maximum"),
                f"Messages wait in {label}: inspect them with `saga_ops dlq list`, redrive with `saga_ops dlq redrive`",
            )
        for saga, machine in state_machines.items():
            for what, metric in (
                ("ExecutionsFailed", machine.metric_failed(period=PERIOD)),
                ("ExecutionsTimedOut", machine.metric_timed_out(period=PERIOD)),
                ("ExecutionsAborted", machine.metric_aborted(period=PERIOD)),
                ("ExecutionThrottled", machine.metric_throttled(period=PERIOD)),
            ):
                alarm(f"{saga}{what}", metric, f"{saga} saga: {what} above 0.")
        alarm(
            "StuckSagas",
            operations_metric(metric_names.STUCK_SAGAS, "Maximum"),
            "Sagas past their deadline or parked: see the stuck-sagas queue and `saga_ops stuck`.",
        )
        compensation_steps = [step for step in steps if step.kind == "compensation"]
        failed = {
            f"c{index}": step.metric(metric_names.STEP_FAILED, "Sum") for index, step in enumerate(compensation_steps)
        }
        alarm(
            "CompensationFailures",
            cloudwatch.MathExpression(
                expression=" + ".join(f"FILL({name}, 0)" for name in failed),
                using_metrics=failed,
                label="compensation commands failed",
                period=PERIOD,
            ),
            "A compensation failed: the saga retries it, then parks it as COMPENSATION_FAILED for `saga_ops resume`.",
        )
        for label, function in functions.items():
            alarm(f"{label}Errors", function.metric_errors(period=PERIOD), f"{label} function errors.")
            alarm(f"{label}Throttles", function.metric_throttles(period=PERIOD), f"{label} function throttles.")

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-sagas", default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(*_widgets(state_machines, dead_letter_queues, steps))


def _widgets(
    state_machines: Mapping[str, sfn.StateMachine],
    dead_letter_queues: Mapping[str, sqs.IQueue],
    steps: Sequence[StepMetrics],
) -> list[cloudwatch.IWidget]:
    width = 12
    executions = [
        metric
        for saga, machine in state_machines.items()
        for metric in (
            machine.metric_started(period=PERIOD, label=f"{saga} started"),
            machine.metric_succeeded(period=PERIOD, label=f"{saga} succeeded"),
            machine.metric_failed(period=PERIOD, label=f"{saga} failed"),
            machine.metric_timed_out(period=PERIOD, label=f"{saga} timed out"),
        )
    ]
    actions = [step for step in steps if step.kind == "action"]
    compensations = [step for step in steps if step.kind == "compensation"]
    failure_rates = []
    for index, step in enumerate(actions):
        failed, succeeded = f"f{index}", f"s{index}"
        failure_rates.append(
            cloudwatch.MathExpression(
                expression=f"100 * FILL({failed}, 0) / ({failed} + FILL({succeeded}, 0))",
                using_metrics={
                    failed: step.metric(metric_names.STEP_FAILED, "Sum"),
                    succeeded: step.metric(metric_names.STEP_SUCCEEDED, "Sum"),
                },
                label=f"{step.step} failure %",
                period=PERIOD,
            )
        )
    return [
        cloudwatch.GraphWidget(title="Executions started, succeeded, failed, timed out", left=executions, width=width),
        cloudwatch.GraphWidget(
            title="Sagas by status (non-terminal)",
            left=[
                operations_metric(metric_names.SAGAS_IN_STATUS, "Maximum", status=status.value)
                for status in (*IN_FLIGHT_STATUSES, *sorted(PARKED_STATUSES))
            ],
            width=width,
        ),
        cloudwatch.GraphWidget(
            title="Step latency p50 / p99 (ms)",
            left=[step.metric(metric_names.STEP_DURATION, "p50", f"{step.step} p50") for step in actions],
            right=[step.metric(metric_names.STEP_DURATION, "p99", f"{step.step} p99") for step in actions],
            width=width,
        ),
        cloudwatch.GraphWidget(title="Step failure rate (%)", left=failure_rates, width=width),
        cloudwatch.GraphWidget(
            title="Compensations run",
            left=[step.metric(metric_names.STEP_SUCCEEDED, "Sum") for step in compensations],
            right=[step.metric(metric_names.STEP_FAILED, "Sum", f"{step.step} failed") for step in compensations],
            width=width,
        ),
        cloudwatch.GraphWidget(
            title="DLQ depths",
            left=[
                queue.metric_approximate_number_of_messages_visible(period=DLQ_PERIOD, statistic="Maximum", label=label)
                for label, queue in dead_letter_queues.items()
            ],
            width=width,
        ),
        cloudwatch.GraphWidget(
            title="Stuck sagas",
            left=[
                operations_metric(metric_names.STUCK_SAGAS, "Maximum"),
                operations_metric(metric_names.STUCK_SAGAS_REPORTED, "Sum"),
            ],
            width=width,
        ),
    ]

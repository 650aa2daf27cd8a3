"""How long a saga may take at most, from its step SLAs: the stuck-saga detector's deadline.

A saga still running after its worst case (every step using every retry to the last, each attempt
running to its timeout, then every compensation doing the same) is stuck: something the state machine
cannot see went wrong, and a human must look.
"""

from __future__ import annotations

from statemachines.definition import RetryPolicy, SagaDefinition, Sla, Step

# Slack on top of the worst case, seconds: callbacks, record writes and SQS delivery between the tasks.
DEADLINE_GRACE_SECONDS = 300


def worst_case_task_seconds(sla: Sla, retry: RetryPolicy) -> float:
    """A callback task whose every attempt times out: (retries + 1) timeouts plus the waits between attempts.

    The wait before retry n is interval * backoff^(n-1), capped at max_delay (jitter only shortens it).
    """
    waits = sum(
        min(retry.interval_seconds * retry.backoff_rate**attempt, retry.max_delay_seconds)
        for attempt in range(retry.max_attempts)
    )
    return (retry.max_attempts + 1) * sla.timeout_seconds + waits


def worst_case_compensation_seconds(step: Step) -> float:
    """A compensation whose every retrier is used up, each attempt to its timeout."""
    waits = sum(
        min(retry.interval_seconds * retry.backoff_rate**attempt, retry.max_delay_seconds)
        for retry in step.compensation_retries
        for attempt in range(retry.max_attempts)
    )
    return step.compensation_attempts * step.sla.timeout_seconds + waits


def saga_deadline_seconds(definition: SagaDefinition) -> int:
    """Seconds after its start by which any saga of this definition has finished, parked or compensated."""
    forward = sum(worst_case_task_seconds(step.sla, step.action_retry) for step in definition.steps)
    compensation = sum(
        worst_case_compensation_seconds(step) for step in definition.steps if step.compensation is not None
    )
    return int(forward + compensation) + DEADLINE_GRACE_SECONDS

"""Compile a saga definition to Amazon States Language.

Shape of what is generated (every state entered is a billed transition, so there are as few as the
semantics allow):

- one callback task per forward step (`sqs:sendMessage.waitForTaskToken`), nothing between them: the
  participant toolkit keeps the saga record's current step, so the happy path costs one transition per
  step plus one to record COMPLETED;
- a failure at step k is caught straight into the compensation of step k-1 (or of step k itself when a
  timeout leaves its outcome unknown); compensations chain in reverse order and end in one state that
  records FAILED. A compensated saga is a business outcome, so that execution succeeds;
- the pivot (the go/no-go step, never compensated) is caught two ways: its permanent failure into the compensation
  of the step before it, like any step; its timeouts and transient errors, once its retries ran out, into a park
  (its outcome is unknown, and past it the saga only goes forward);
- a compensation that fails after its retries records COMPENSATION_FAILED and fails the execution with
  `Saga.CompensationFailed`; the pivot or a retriable step (past the pivot) that runs out of retries records
  FORWARD_RECOVERY_FAILED (and its step FAILED, with the error) and fails with `Saga.ForwardRecoveryFailed`. Only
  parked sagas fail. Either park state writes the saga's `pending` list: what an operator's resume runs, in order
  (the failed compensation and every earlier one, last first; or the stalled step and every step after it), known
  here statically, so parking costs no state more.

The execution as a whole is bounded by `TimeoutSeconds`, the saga's deadline (statemachines/deadline.py: every
step and compensation using all its retries, each attempt to its timeout, plus grace): an execution that escapes
every Catch still ends (TIMED_OUT), and the execution-status reconciler parks its saga. It enters no state, so it
bills no transition.

Queue URLs and the saga table name are `${...}` placeholders filled by the state machine's
DefinitionSubstitutions at deploy time.
"""

from __future__ import annotations

import re
from typing import Any

from statemachines.deadline import saga_deadline_seconds
from statemachines.definition import RetryPolicy, SagaDefinition, Step

SAGA_TABLE_KEY = "SagaTableName"
CALLBACK_RESOURCE = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
UPDATE_ITEM_RESOURCE = "arn:aws:states:::dynamodb:updateItem"

RECORD_COMPLETED = "RecordCompleted"
RECORD_FAILED = "RecordFailed"
COMPENSATION_FAILED_STATE = "CompensationFailed"
FORWARD_RECOVERY_FAILED_STATE = "ForwardRecoveryFailed"
COMPENSATION_FAILED_ERROR = "Saga.CompensationFailed"
FORWARD_RECOVERY_FAILED_ERROR = "Saga.ForwardRecoveryFailed"

# SQS delivery of the command itself: safe to retry, the command is idempotent on its key.
DELIVERY_ERRORS = ["SQS.SdkClientException", "SQS.AmazonSQSException", "SQS.KmsThrottledException"]
DELIVERY_RETRY = RetryPolicy(
    errors=DELIVERY_ERRORS, max_attempts=3, interval_seconds=1, backoff_rate=2.0, max_delay_seconds=5
)
# Writing the saga record: transient DynamoDB errors.
RECORD_RETRY = RetryPolicy(
    errors=[
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.RequestLimitExceeded",
        "DynamoDB.ThrottlingException",
        "DynamoDB.InternalServerErrorException",
        "DynamoDB.AmazonDynamoDBException",
    ],
    max_attempts=6,
    interval_seconds=1,
    backoff_rate=2.0,
    max_delay_seconds=30,
)


def queue_url_key(command: str) -> str:
    """Substitution key of the queue that carries `command` (e.g. ReserveItems -> ReserveItemsQueueUrl)."""
    return f"{command}QueueUrl"


def substitution_keys(definition: SagaDefinition) -> list[str]:
    keys = [queue_url_key(command) for step in definition.steps for command in step.commands]
    return [*keys, SAGA_TABLE_KEY]


def action_state(step: Step) -> str:
    return step.action


def compensation_state(step: Step) -> str:
    assert step.compensation is not None
    return step.compensation


def compile_saga(definition: SagaDefinition) -> dict[str, Any]:
    states: dict[str, Any] = {}
    steps = definition.steps
    for index, step in enumerate(steps):
        next_state = action_state(steps[index + 1]) if index + 1 < len(steps) else RECORD_COMPLETED
        if step.retriable:
            states[action_state(step)] = _retriable_task(definition, step, next_state)
        elif step.pivot:
            states[action_state(step)] = _pivot_task(definition, steps, index, next_state)
        else:
            states[action_state(step)] = _forward_task(definition, steps, index, next_state)
        states[action_state(step)]["Parameters"]["MessageBody"] |= _place_in_saga(steps, index)
    for index, step in enumerate(steps):
        if step.compensation is None:
            continue
        states[compensation_state(step)] = _compensation_task(definition, steps, index)
        states[_park_state(step)] = _record_update(
            "COMPENSATION_FAILED",
            failed_step=step.name,
            error_path="$.compensation_error",
            next_state=COMPENSATION_FAILED_STATE,
            keep_saga_error=True,
            pending=pending_after_compensation_failure(definition, step.name),
        )
    for step in steps:
        if step.forward_recovery:
            states[_stalled_state(step)] = _record_update(
                "FORWARD_RECOVERY_FAILED",
                failed_step=step.name,
                error_path="$.error",
                next_state=FORWARD_RECOVERY_FAILED_STATE,
                step_failed=True,
                pending=pending_after_forward_recovery_failure(definition, step.name),
            )
    states[RECORD_COMPLETED] = _record_update("COMPLETED", succeeded_steps=[step.name for step in steps])
    if definition.compensatable_steps or definition.pivot is not None:  # a first-step pivot's refusal ends here
        states[RECORD_FAILED] = _record_update("FAILED", error_path="$.error")
    if definition.compensatable_steps:
        states[COMPENSATION_FAILED_STATE] = {
            "Type": "Fail",
            "Comment": "Parked: a compensation failed after its retries. The saga record names the step.",
            "Error": COMPENSATION_FAILED_ERROR,
            "Cause": "A compensation failed after its retries; the saga is parked as COMPENSATION_FAILED.",
        }
    if any(step.forward_recovery for step in steps):
        states[FORWARD_RECOVERY_FAILED_STATE] = {
            "Type": "Fail",
            "Comment": "Parked: the pivot or a retriable step ran out of retries. The saga record names the step.",
            "Error": FORWARD_RECOVERY_FAILED_ERROR,
            "Cause": "The pivot or a retriable step ran out of retries; the saga is parked as FORWARD_RECOVERY_FAILED.",
        }
    return {
        "Comment": f"{definition.name} saga: {definition.description} Generated from the saga definition; do not edit.",
        "StartAt": action_state(steps[0]),
        "TimeoutSeconds": saga_deadline_seconds(definition),
        "States": states,
    }


def pending_after_compensation_failure(definition: SagaDefinition, step_name: str) -> list[dict[str, str]]:
    """What is left to do once `step_name`'s compensation failed for good: it, then every earlier compensation."""
    names = [step.name for step in definition.steps]
    earlier = definition.steps[: names.index(step_name) + 1]
    return [{"step": step.name, "kind": "compensation"} for step in reversed(earlier) if step.compensation is not None]


def pending_after_forward_recovery_failure(definition: SagaDefinition, step_name: str) -> list[dict[str, str]]:
    """What is left to do once the pivot or retriable step `step_name` ran out of retries: it, then every step after
    it."""
    names = [step.name for step in definition.steps]
    return [{"step": step.name, "kind": "action"} for step in definition.steps[names.index(step_name) :]]


def _forward_task(definition: SagaDefinition, steps: list[Step], index: int, next_state: str) -> dict[str, Any]:
    step = steps[index]
    undo_before = compensation_state(steps[index - 1]) if index > 0 else RECORD_FAILED
    catches = []
    if step.on_timeout == "compensate":
        catches.append(_catch(["States.Timeout"], compensation_state(step), "$.error"))
    catches.append(_catch(["States.ALL"], undo_before, "$.error"))
    task = _callback_task(definition, step, "action", has_results=index > 0)
    task["ResultPath"] = f"$.results.{step.name}"
    task["Retry"] = _retriers(step.action_retry)
    task["Catch"] = catches
    task["Next"] = next_state
    return task


def _pivot_task(definition: SagaDefinition, steps: list[Step], index: int, next_state: str) -> dict[str, Any]:
    """The go/no-go step. A permanent failure (the pivot said no) compensates the steps before it; a timeout or a
    transient error is retried, and parks the saga once its retries ran out: the pivot may have taken effect, and it
    is never compensated."""
    step = steps[index]
    undo_before = compensation_state(steps[index - 1]) if index > 0 else RECORD_FAILED
    task = _callback_task(definition, step, "action", has_results=index > 0)
    task["ResultPath"] = f"$.results.{step.name}"
    task["Retry"] = _retriers(step.action_retry)
    task["Catch"] = [
        _catch(list(step.action_retry.errors), _stalled_state(step), "$.error"),
        _catch(["States.ALL"], undo_before, "$.error"),
    ]
    task["Next"] = next_state
    return task


def _retriable_task(definition: SagaDefinition, step: Step, next_state: str) -> dict[str, Any]:
    task = _callback_task(definition, step, "action", has_results=True)
    task["ResultPath"] = f"$.results.{step.name}"
    task["Retry"] = _retriers(step.action_retry)
    task["Catch"] = [_catch(["States.ALL"], _stalled_state(step), "$.error")]
    task["Next"] = next_state
    return task


def _compensation_task(definition: SagaDefinition, steps: list[Step], index: int) -> dict[str, Any]:
    step = steps[index]
    task = _callback_task(definition, step, "compensation", has_results=True)
    task["ResultPath"] = None
    task["Retry"] = [_retrier(policy) for policy in step.compensation_retries if policy.max_attempts > 0]
    task["Retry"].append(_retrier(DELIVERY_RETRY))
    task["Catch"] = [_catch(["States.ALL"], _park_state(step), "$.compensation_error")]
    task["Next"] = compensation_state(steps[index - 1]) if index > 0 else RECORD_FAILED
    return task


def _callback_task(definition: SagaDefinition, step: Step, kind: str, *, has_results: bool) -> dict[str, Any]:
    command = step.action if kind == "action" else step.compensation
    assert command is not None
    body: dict[str, Any] = {
        "saga_id.$": "$$.Execution.Name",
        "saga_type": definition.name,
        "step": step.name,
        "kind": kind,
        "command": command,
        "idempotency_key.$": f"States.Format('{{}}#{step.name}#{kind}', $$.Execution.Name)",
        "task_token.$": "$$.Task.Token",
        "heartbeat_seconds": step.sla.heartbeat_seconds,
        "input.$": "$.input",
    }
    if has_results:
        body["results.$"] = "$.results"
    if kind == "compensation":
        body["error.$"] = "$.error"
    return {
        "Type": "Task",
        "Comment": f"{step.service}: {command}",
        "Resource": CALLBACK_RESOURCE,
        "Parameters": {"QueueUrl": f"${{{queue_url_key(command)}}}", "MessageBody": body},
        "TimeoutSeconds": step.sla.timeout_seconds,
        "HeartbeatSeconds": step.sla.heartbeat_seconds,
    }


def _place_in_saga(steps: list[Step], index: int) -> dict[str, Any]:
    """What an action's participant needs to read the saga record: the steps either side of it (an answer marks the
    next one running; a refused late answer is undone only if the record shows the saga did not keep the step),
    whether the step is recovered forward (`retriable`: the pivot or a retriable step, whose late answers are never
    undone and which an operator may run again without a token), and the compensation command that undoes it (one
    participant serves every command of its service, in any saga)."""
    place: dict[str, Any] = {}
    if index > 0:
        place["previous_step"] = steps[index - 1].name
    if index + 1 < len(steps):
        place["next_step"] = steps[index + 1].name
    if steps[index].forward_recovery:
        place["retriable"] = True
    if steps[index].compensation is not None:
        place["compensation"] = steps[index].compensation
    return place


def _retriers(policy: RetryPolicy) -> list[dict[str, Any]]:
    retriers = [_retrier(DELIVERY_RETRY)]
    if policy.max_attempts > 0:
        retriers.insert(0, _retrier(policy))
    return retriers


def _retrier(policy: RetryPolicy) -> dict[str, Any]:
    retrier: dict[str, Any] = {
        "ErrorEquals": list(policy.errors),
        "IntervalSeconds": policy.interval_seconds,
        "MaxAttempts": policy.max_attempts,
        "BackoffRate": policy.backoff_rate,
        "MaxDelaySeconds": policy.max_delay_seconds,
    }
    if policy.jitter == "FULL":
        retrier["JitterStrategy"] = "FULL"
    return retrier


def _catch(errors: list[str], next_state: str, result_path: str) -> dict[str, Any]:
    return {"ErrorEquals": errors, "ResultPath": result_path, "Next": next_state}


def _park_state(step: Step) -> str:
    return f"Park{compensation_state(step)}Failure"


def _stalled_state(step: Step) -> str:
    return f"Park{action_state(step)}Stalled"


def _record_update(
    status: str,
    *,
    failed_step: str | None = None,
    error_path: str | None = None,
    next_state: str | None = None,
    keep_saga_error: bool = False,
    succeeded_steps: list[str] | None = None,
    step_failed: bool = False,
    pending: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One DynamoDB UpdateItem on the saga record; a missing record is created rather than lost (unless it names
    `succeeded_steps` or `step_failed`: their entries in the record's steps map must exist).

    `step_failed` marks `failed_step` FAILED with the error at `error_path` (a retriable step whose retries ran out:
    no participant answered its last attempt, so nothing else would); `pending` is written as the saga's list of
    what is left to run, each `{"step", "kind"}`."""
    sets = ["#status = :status", "updated_at = :now"]
    names = {"#status": "status"}
    values: dict[str, Any] = {
        ":status": {"S": status},
        ":now": {"S.$": "$$.State.EnteredTime"},
        ":one": {"N": "1"},
    }
    if succeeded_steps:
        # A completed saga's record says every step SUCCEEDED, and that it ended at its last step, at once: each
        # participant marks its own step (and moves the current step on) only after Step Functions took its answer,
        # and a saga can run to its end before any of those marks land; none moves the current step of a saga past
        # running forward, so they never rewind this.
        values[":succeeded"] = {"S": "SUCCEEDED"}
        values[":last_step"] = {"S": succeeded_steps[-1]}
        sets.append("current_step = :last_step")
        for index, step in enumerate(succeeded_steps):
            names[f"#step{index}"] = step
            sets.append(f"steps.#step{index}.#status = :succeeded")
    if failed_step is not None:
        sets.append("failed_step = :failed_step")
        values[":failed_step"] = {"S": failed_step}
    if step_failed:
        assert failed_step is not None
        assert error_path is not None
        names |= {"#failed": failed_step, "#error": "error", "#cause": "cause"}
        values[":step_failed"] = {"S": "FAILED"}
        sets += [
            "steps.#failed.#status = :step_failed",
            "steps.#failed.#error = :error",
            "steps.#failed.#cause = :cause",
            "steps.#failed.finished_at = :now",
        ]
    if pending is not None:
        names["#pending"] = "pending"
        values[":pending"] = {
            "L": [{"M": {"step": {"S": entry["step"]}, "kind": {"S": entry["kind"]}}} for entry in pending]
        }
        sets.append("#pending = :pending")
    if error_path is not None:
        # A parked compensation keeps the error that started compensating next to its own.
        target = "compensation_" if keep_saga_error else "#"
        sets += [f"{target}error = :error", f"{target}cause = :cause"]
        values[":error"] = {"S.$": f"{error_path}.Error"}
        values[":cause"] = {"S.$": f"{error_path}.Cause"}
    if keep_saga_error:
        sets += ["#error = :saga_error", "#cause = :saga_cause"]
        values[":saga_error"] = {"S.$": "$.error.Error"}
        values[":saga_cause"] = {"S.$": "$.error.Cause"}
    if error_path is not None or keep_saga_error:
        names |= {"#error": "error", "#cause": "cause"}
    state: dict[str, Any] = {
        "Type": "Task",
        "Comment": f"Saga record: {status}",
        "Resource": UPDATE_ITEM_RESOURCE,
        "Parameters": {
            "TableName": f"${{{SAGA_TABLE_KEY}}}",
            "Key": {"saga_id": {"S.$": "$$.Execution.Name"}},
            "UpdateExpression": f"SET {', '.join(sets)} ADD version :one",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        },
        "ResultPath": None,
        "Retry": [_retrier(RECORD_RETRY)],
    }
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def placeholders(asl_text: str) -> set[str]:
    """The `${Key}` substitution keys used in a compiled definition."""
    return set(_PLACEHOLDER.findall(asl_text))

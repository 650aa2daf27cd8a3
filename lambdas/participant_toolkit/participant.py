"""A saga participant: turns SQS batches of saga commands into domain calls and task callbacks.

What a participant author writes is two domain functions, `(SagaCommand) -> dict`, for the action and
its compensation. The toolkit does the rest, the same way for every service:

- parse and validate the command; an unparseable one fails its batch item, so SQS redelivers it and
  finally dead-letters it (the DLQ alarm fires), it never vanishes;
- run the domain function once per idempotency key (saga id + step + kind, set by the state machine,
  not the SQS message id): a retry with a fresh task token gets the stored outcome and answers its own token;
- answer each task token once: the deliveries of one command (same key, same token) are serialised by a second
  idempotency record, so a duplicate that arrives while the first delivery works is redelivered later and then
  finds the answer given, and a refused callback can only mean that the task ended without our answer;
- heartbeat while the domain function runs, and for the commands of a batch waiting their turn;
- map outcomes in one place: success -> SendTaskSuccess; PermanentFailure -> SendTaskFailure (the saga
  compensates; the rejection is stored like a success); TransientFailure -> SendTaskFailure with the
  transient error name (the state machine retries); anything else -> the batch item fails and SQS
  redelivers;
- keep the saga record's current step, so the state machine spends no billed transitions on it;
- a success refused because the task already ended (timed out while we worked) means the saga has
  compensated around this step: the toolkit undoes its own effect with the compensation function;
- a compensation without a task token is one an operator re-runs on a parked saga (saga_ops resume):
  no task waits for it, so its outcome, success or failure, is written on the saga record only;
- per step (dimensions service, step, kind) it publishes the duration, successes and failures that the
  dashboard's latency and failure-rate widgets read, and per batch the records handed back to SQS (alarmed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from participant_toolkit.callbacks import BeatingTokens, LateCallback, TaskCallbacks
from participant_toolkit.command import CommandKind, MalformedCommand, SagaCommand, parse_command
from participant_toolkit.errors import PermanentFailure, TransientFailure
from participant_toolkit.observability import logger, metrics, tracer
from participant_toolkit.settings import ParticipantSettings
from saga_records import SagaRecordRepository, StepStatus, metric_names

DomainFunction = Callable[[SagaCommand], dict[str, Any]]
HEARTBEATS_PER_INTERVAL = 3  # beat three times per heartbeat window, so one lost beat is survivable
# Below this beat interval (seconds; only scaled local clocks go there: the demo's longest is 1.33 s) a busy host's
# scheduling delay is a fair share of the interval: such commands keep the pick-up beat.
MIN_DEFERRED_BEAT_INTERVAL_SECONDS = 1.5


class CommandOnWrongQueue(Exception):
    """A command whose kind does not match the function it reached: a wiring error, dead-lettered."""


class DeliveryInProgress(Exception):
    """Another delivery of this very task attempt is being answered: SQS redelivers this one later, by when the
    answer is given (and the redelivery changes nothing) or that delivery died (and this one answers)."""


class SagaParticipant:
    def __init__(
        self,
        *,
        service: str,
        action: DomainFunction,
        compensation: DomainFunction,
        settings: ParticipantSettings,
        callbacks: TaskCallbacks | None = None,
        records: SagaRecordRepository | None = None,
        idempotency_client: Any = None,
    ) -> None:
        self.service = service
        self.domain: dict[CommandKind, DomainFunction] = {"action": action, "compensation": compensation}
        self.settings = settings
        self.callbacks = callbacks or TaskCallbacks()
        self.records = records or SagaRecordRepository(settings.saga_table_name)
        idempotency_client = idempotency_client or boto3.client("dynamodb")

        def persistence() -> DynamoDBPersistenceLayer:
            # One per idempotent function: Powertools keeps the key expression and prefix on the layer, so a layer
            # shared by the nested answer and domain units would store one under the other's key.
            return DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=idempotency_client)

        # The domain runs once per step and kind (whatever the task attempt); each attempt's token is answered once.
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
        )
        self._answer_idempotency = IdempotencyConfig(
            event_key_jmespath="[idempotency_key, task_token]",  # hashed: the token itself is not stored
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_mark_duplicate,
        )
        self._run_once: dict[CommandKind, Callable[..., dict[str, Any]]] = {
            kind: idempotent_function(
                self._domain_runner(kind),
                data_keyword_argument="command",
                persistence_store=persistence(),
                config=self._idempotency,
                key_prefix=f"{service}.{kind}",
            )
            for kind in ("action", "compensation")
        }
        self._answer_once: dict[CommandKind, Callable[..., dict[str, Any]]] = {
            kind: idempotent_function(
                self._answer,
                data_keyword_argument="command",
                persistence_store=persistence(),
                config=self._answer_idempotency,
                key_prefix=f"{service}.{kind}.answer",
            )
            for kind in ("action", "compensation")
        }
        self._processor = BatchProcessor(event_type=EventType.SQS)
        self._queued = BeatingTokens()  # commands of the current batch waiting their turn
        self.action_handler = _lambda_handler(self.handle_actions)
        self.compensation_handler = _lambda_handler(self.handle_compensations)

    def handle_actions(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self._handle_batch(event, context, "action")

    def handle_compensations(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self._handle_batch(event, context, "compensation")

    def _handle_batch(self, event: dict[str, Any], context: LambdaContext, kind: CommandKind) -> dict[str, Any]:
        # Without the context a timed-out invocation would hold its INPROGRESS lock until expiry.
        self._idempotency.register_lambda_context(context)
        self._answer_idempotency.register_lambda_context(context)
        # Every batch counts, even one of only malformed messages (which would otherwise publish no metric).
        metrics.add_metric(name="CommandsReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
        try:
            with self._heartbeats_while_queued(event):
                return process_partial_response(
                    event=event,
                    record_handler=partial(self._handle_record, kind=kind),
                    processor=self._processor,
                    context=context,
                )
        finally:
            self._count_failed_records()

    def _count_failed_records(self) -> None:
        """Records handed back to SQS (Lambda's Errors metric sees only a batch that failed whole), 0 included; a
        duplicate waiting for its twin's answer is SQS doing its job, not a failure."""
        failed = [info for info in self._processor.exceptions if not issubclass(info[0], DeliveryInProgress)]
        metrics.add_metric(name=metric_names.BATCH_RECORDS_FAILED, unit=MetricUnit.Count, value=len(failed))

    @contextmanager
    def _heartbeats_while_queued(self, event: dict[str, Any]) -> Iterator[None]:
        """A batch's commands run one after another: those waiting behind a slow one would send no heartbeat, and
        their tasks would time out before they start. Beat for each from receipt until its own work begins."""
        queued = _queued_commands(event)
        if len(queued) < 2:  # a lone command's own heartbeats start at once
            yield
            return
        every = min(queued.values()) * self.settings.time_scale / HEARTBEATS_PER_INTERVAL
        self._queued.replace(queued)
        try:
            with self.callbacks.heartbeats_for(self._queued, every_seconds=every):
                yield
        finally:
            self._queued.replace(())

    def _stop_queued_heartbeat(self, token: str | None) -> None:
        self._queued.discard(token)

    def _handle_record(self, record: SQSRecord, kind: CommandKind) -> None:
        command = parse_command(record.body)
        if command.kind != kind:
            raise CommandOnWrongQueue(f"{command.kind} command {command.command} reached a {kind} function")
        self._stop_queued_heartbeat(command.task_token)  # from here on, execute() heartbeats for it
        logger.append_keys(**command.log_keys())
        try:
            self.execute(command, queued_seconds=_queued_seconds(record))
        finally:
            logger.remove_keys(list(command.log_keys()))

    def execute(self, command: SagaCommand, queued_seconds: float | None = None) -> None:
        """Run one command and answer its task token; raises only when SQS should redeliver it.

        `queued_seconds`: how long the command waited in its queue (None: unknown).
        """
        if command.task_token is None:
            self._execute_for_operator(command)
            return
        try:
            answer = self._answer_once[command.kind](command=command, queued_seconds=queued_seconds)
        except IdempotencyAlreadyInProgressError:
            self._count("DuplicateDelivery")
            raise DeliveryInProgress(f"{command.kind} {command.command}: another delivery is answering") from None
        if answer.get("delivery") == "duplicate":
            # SQS delivers at least once: this task's answer was given, and the saga has moved on since. Running it
            # again would rewind the record's current step, and its refused callback would look like a late action.
            self._count("DuplicateDelivery")
            logger.info("Duplicate delivery of a command whose answer was already given; nothing to do")

    def _answer(self, command: SagaCommand, queued_seconds: float | None = None) -> dict[str, Any]:
        """The unit that runs once per task attempt: run the domain (once per step), record it, answer the token.

        What it returns is stored; a later delivery of the same attempt gets it back marked by `_mark_duplicate`."""
        started = time.monotonic()
        self.records.step_started(command.saga_id, command.step, command.kind)
        every = command.heartbeat_seconds * self.settings.time_scale / HEARTBEATS_PER_INTERVAL
        # The task's heartbeat window opened when the command was sent. Picked up within one beat interval, two of
        # the window's three intervals are left: the first beat can wait an interval, so a step that answers sooner
        # costs one SendTask* call instead of two (the quota that bounds sagas per second, see bench/capacity.py).
        beat_now = queued_seconds is None or queued_seconds >= every or every < MIN_DEFERRED_BEAT_INTERVAL_SECONDS
        # Heartbeats run until the answer is sent: recording the step and calling back can be slow too.
        with self.callbacks.heartbeats(command.task_token, every_seconds=every, beat_now=beat_now):
            try:
                outcome = self._run_once[command.kind](command=command)
            except TransientFailure as failure:
                self._count("CommandFailedTransiently")
                self._step_metrics(command, started, succeeded=False)
                self._reject(command, failure.error, failure.cause, record_step=False)
                return {"answer": "retry"}
            self._record_latency(started)
            self._step_metrics(command, started, succeeded=outcome["outcome"] != "rejected")
            if outcome["outcome"] == "rejected":
                self._count("CommandRejected")
                self._reject(command, outcome["error"], outcome["cause"], record_step=True)
                return {"answer": "rejected"}
            return {"answer": self._complete(command, outcome["result"])}

    def _execute_for_operator(self, command: SagaCommand) -> None:
        """A compensation re-run by an operator: no task token to answer, the saga record gets the outcome."""
        started = time.monotonic()
        self.records.step_started(command.saga_id, command.step, command.kind)
        try:
            outcome = self._run_once[command.kind](command=command)
        except TransientFailure as failure:
            outcome = {"outcome": "rejected", "error": failure.error, "cause": failure.cause}
        self._step_metrics(command, started, succeeded=outcome["outcome"] == "succeeded")
        if outcome["outcome"] == "succeeded":
            self.records.step_finished(command.saga_id, command.step, StepStatus.COMPENSATED, result=outcome["result"])
        else:
            self.records.step_finished(
                command.saga_id,
                command.step,
                StepStatus.COMPENSATION_FAILED,
                error=outcome["error"],
                cause=outcome["cause"],
            )

    def _domain_runner(self, kind: CommandKind) -> Callable[..., dict[str, Any]]:
        def run_domain(command: SagaCommand) -> dict[str, Any]:
            """The unit that runs once per idempotency key; a rejection is an outcome and is stored too."""
            try:
                return {"outcome": "succeeded", "result": self.domain[kind](command)}
            except PermanentFailure as failure:
                return {"outcome": "rejected", "error": failure.error, "cause": failure.cause}

        return run_domain

    def _complete(self, command: SagaCommand, result: dict[str, Any]) -> str:
        done = StepStatus.SUCCEEDED if command.kind == "action" else StepStatus.COMPENSATED
        self.records.step_finished(command.saga_id, command.step, done, result=result)
        try:
            self.callbacks.succeed(command.task_token, result)
        except LateCallback as late:
            # No other delivery of this attempt can have answered (they are serialised): the task ended without us.
            self._count("LateCallback")
            logger.warning("Callback refused: the task already ended", extra={"reason": str(late)})
            if command.kind == "action":
                self._undo_late_action(command)
            return "late"
        self._count("CommandSucceeded")
        return "succeeded"

    def _reject(self, command: SagaCommand, error: str, cause: str, *, record_step: bool) -> None:
        if record_step:
            failed = StepStatus.FAILED if command.kind == "action" else StepStatus.COMPENSATION_FAILED
            self.records.step_finished(command.saga_id, command.step, failed, error=error, cause=cause)
        try:
            self.callbacks.fail(command.task_token, error, cause)
        except LateCallback:
            logger.info("Failure callback refused: the task already ended; nothing was applied")

    def _undo_late_action(self, command: SagaCommand) -> None:
        """The saga compensated around this step while we worked: take our own effect back."""
        compensation = command.model_copy(update={"kind": "compensation"})
        try:
            self.domain["compensation"](compensation)
        except PermanentFailure as failure:
            # Nothing more this participant can do by itself: dead-letter it for a human.
            raise RuntimeError(f"late action could not be undone: {failure.error}") from failure
        self._count("LateActionUndone")

    # One function serves one command, so the function's own dimensions already name the step and kind.
    @staticmethod
    def _count(name: str) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def _step_metrics(self, command: SagaCommand, started: float, *, succeeded: bool) -> None:
        """Duration and outcome of one step's command, with the step and kind as dimensions."""
        dimensions = {"service": self.service, "step": command.step, "kind": command.kind}
        outcomes = (
            (metric_names.STEP_DURATION, MetricUnit.Milliseconds, (time.monotonic() - started) * 1000),
            (metric_names.STEP_SUCCEEDED if succeeded else metric_names.STEP_FAILED, MetricUnit.Count, 1),
        )
        for name, unit, value in outcomes:
            with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
                for key, dimension in dimensions.items():
                    metric.add_dimension(name=key, value=dimension)

    @staticmethod
    def _record_latency(started: float) -> None:
        metrics.add_metric(
            name="CommandDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
        )


def _mark_duplicate(stored_answer: dict[str, Any], _record: Any) -> dict[str, Any]:
    """Powertools' response hook: what a delivery gets back when its attempt was answered already."""
    return {**stored_answer, "delivery": "duplicate"}


def _queued_commands(event: dict[str, Any]) -> dict[str, int]:
    """Task token -> heartbeat seconds of each well-formed command in a batch (the others fail on their own)."""
    queued = {}
    for record in event.get("Records", []):
        try:
            command = parse_command(record.get("body", ""))
        except MalformedCommand:
            continue
        if command.task_token is not None:
            queued[command.task_token] = command.heartbeat_seconds
    return queued


def _queued_seconds(record: SQSRecord) -> float | None:
    """Seconds since SQS accepted the message (its SentTimestamp, epoch milliseconds), None if absent."""
    sent = record.attributes.get("SentTimestamp")
    return None if not sent else max(0.0, time.time() - int(sent) / 1000)


def _lambda_handler(handle: Callable[[dict[str, Any], LambdaContext], dict[str, Any]]) -> Callable[..., Any]:
    """The Lambda entry point: Powertools context, tracing and metrics around one toolkit call."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return handle(event, context)

    return handler

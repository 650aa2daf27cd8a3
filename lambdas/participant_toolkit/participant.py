"""A saga participant: turns SQS batches of saga commands into domain calls and task callbacks.

What a participant author writes is one domain function per command of the service, `(SagaCommand) -> dict`: the
actions and compensations of every step the service owns, in any saga (a retriable step's action has no compensation).
`SagaParticipant(service=..., commands={name: function}, settings=...)` serves them all; `participant.handler(name)` is
the Lambda entry point of one command's function. The toolkit does the rest, the same way for every service:

- parse and validate the command; an unparseable one, or one of another name than the function's, fails its batch
  item, so SQS redelivers it and finally dead-letters it (the DLQ alarm fires), it never vanishes;
- run a step once per idempotency key (saga id + step + kind, set by the state machine, not the SQS message id)
  under one Powertools idempotency record: the domain function, the answer to the task token and the saga record's
  mark. The record stores the outcome and a hash of the token it answered. The same command delivered again gets
  that record back and does nothing; a fresh token (the task retried) is answered from the stored outcome, without
  running the domain again, once per token (a second, short Powertools record keyed by the token too);
- a delivery that meets another delivery's lock on its step (`IdempotencyAlreadyInProgressError`) beats its task
  and comes back after half its heartbeat window instead of the queue's visibility timeout, so a retry that waits
  for the lock still answers its own token in time;
- heartbeat each command of a batch once per third of its heartbeat window, counted from when it was sent, until it
  is answered: a command picked up and answered within that first third sends no heartbeat, one that waited longer
  in its queue beats on pick-up, before the batch runs;
- shed stale work: a command whose pick-up beat is refused waited in its queue until its task ended (timed out, or
  answered by another copy), so nothing waits for its answer. On its first receive it is deleted without running the
  domain function (`StaleCommandsShed`): the saga already moved on (a timed-out action is compensated, a timed-out
  compensation is retried with a fresh command). A redelivered one runs as before, since an earlier receive may
  have acted and left the undoing of a refused late answer to it;
- map outcomes in one place: success -> SendTaskSuccess; PermanentFailure -> SendTaskFailure (the saga
  compensates; the rejection is stored like a success); TransientFailure -> SendTaskFailure with the
  transient error name (the state machine retries; nothing is stored, so the retry runs the domain again);
  anything else -> the batch item fails and SQS redelivers. A failure's cause never carries the input's
  credentials or personal data (participant_toolkit/redaction.py), whatever the domain function wrote;
- keep the saga record's steps, so the state machine spends no billed transitions on them: an action's step is
  marked SUCCEEDED (the next step RUNNING) or FAILED once Step Functions took its answer; a compensation's step is
  marked COMPENSATING before it runs and COMPENSATED or COMPENSATION_FAILED after;
- a refused answer means only that the task no longer waits for this token: it was answered (by an earlier
  delivery, a retry, a duplicate) or it timed out. A refused success of an action is undone with the compensation
  function only when the saga record shows the saga did not keep the step (it is being or was compensated, it
  failed, or the saga compensated past it); never when the step is SUCCEEDED, the next step started or the saga
  COMPLETED, never for a retriable step (forward recovery) and never for a compensation. The action's command names
  its compensation (the compiler writes it), so one participant serving several steps finds the right function. A
  record that shows neither sends the command back to SQS to decide later, and in the end to its DLQ, whose alarm
  fires;
- a compensation, or a retriable step's action, without a task token is one an operator re-runs on a parked saga
  (saga_ops resume): no task waits for it, so its outcome, success or failure, is written on the saga record only;
- under choreography (the command's `reply` is `bus`) the answer is an event on the saga bus: an action first claims
  its step's outcome on the saga record (RUNNING -> SUCCEEDED, the next step RUNNING, or FAILED; conditional, so a
  step whose deadline the tracker marked first is a late answer, decided as above, and publishes nothing), then
  publishes `<step>.Succeeded` (with its result added to the saga's results) or `<step>.Failed`; a compensation
  publishes `<step>.Compensated` or `<step>.CompensationFailed`. A transient failure goes back to the command's own
  queue with SQS DelaySeconds (the definition's backoff and jitter) and the attempt counted in the envelope; out of
  attempts, the step fails with the transient error's name (a forward-recovered step's stalls: `<step>.Stalled`). A
  delivery that finds its own claim already on the record (an earlier delivery died before publishing) publishes
  again: consumers are idempotent. A forward-recovered step requested again by the tracker (its `Retried`, after a
  deadline) is answered from its stored outcome, published only if that claim is the one that answers the step;
- per step (dimensions service, step, kind) it publishes the duration, successes and failures that the
  dashboard's latency and failure-rate widgets read, and per batch the records handed back to SQS (alarmed).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from enum import Enum, StrEnum
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

import host_hooks
from participant_toolkit.bus import SagaBus
from participant_toolkit.callbacks import HeartbeatSchedule, LateCallback, TaskCallbacks, missed_heartbeat
from participant_toolkit.command import CommandKind, MalformedCommand, SagaCommand, parse_command
from participant_toolkit.deliveries import Deliveries
from participant_toolkit.errors import ParticipantFailure, PermanentFailure, TransientFailure
from participant_toolkit.observability import logger, metrics, tracer
from participant_toolkit.redaction import redact
from participant_toolkit.settings import ParticipantSettings
from saga_records import SagaRecordRepository, SagaStatus, StepStatus, metric_names
from saga_records.events import SagaEventDetail

DomainFunction = Callable[[SagaCommand], dict[str, Any]]
HEARTBEATS_PER_INTERVAL = 3  # beat three times per heartbeat window, so one lost beat is survivable
# Below this beat interval (seconds; only scaled local clocks go there: the demo's longest is 1.33 s) a busy host's
# scheduling delay is a fair share of the interval: such commands beat on pick-up.
MIN_DEFERRED_BEAT_INTERVAL_SECONDS = 1.5
# A delivery that meets another's lock comes back after half its heartbeat window on its first receives. A lock
# lasts at most the function's timeout (a sixth of the queue's visibility timeout), so from then on the delivery
# waits the whole visibility timeout: one whose holder died finds the lock expired, before maxReceiveCount (5).
QUICK_RETURNS_ON_LOCK = 3
OUTCOME_FIELDS = ("outcome", "result", "error", "cause")
# A step the saga is undoing, or has undone (a compensation marks them; so does an operator's resume).
UNDOING_STEP = frozenset({StepStatus.COMPENSATING, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED})


class CommandOnWrongQueue(Exception):
    """A command of another name than the function it reached serves: a wiring error, dead-lettered."""


class DeliveryInProgress(Exception):
    """Another delivery of this step is running it: SQS redelivers this one soon, by when that delivery has answered
    (and this one answers its own token from the stored outcome, or is a duplicate) or died (and this one runs)."""


class LateActionUndecided(Exception):
    """An action's success was refused and the saga record shows neither that the saga kept the step nor that it gave
    it up: SQS redelivers the command to decide later (and finally dead-letters it, and its DLQ alarm fires)."""


class LateActionNotUndone(Exception):
    """The compensation that would undo a refused late action failed, or this participant serves none of that name:
    SQS redelivers the command to try again (and finally dead-letters it, and its DLQ alarm fires)."""


class TransientUnderChoreography(Exception):
    """A choreographed command failed transiently: retried from its own queue (the record it came in names it)."""

    def __init__(self, failure: TransientFailure) -> None:
        super().__init__(failure.error)
        self.failure = failure


class Answer(StrEnum):
    """What became of a task token's answer; stored with the outcome."""

    GIVEN = "given"  # Step Functions took it
    REFUSED = "refused"  # the task no longer waited, and nothing is to be taken back
    KEPT = "kept"  # refused, but the saga record shows the saga kept the step
    UNDONE = "undone"  # refused, the saga did not keep the step: the compensation function took the effect back


class Verdict(Enum):
    KEPT = "kept"
    NOT_KEPT = "not kept"
    UNDECIDED = "undecided"


class SagaParticipant:
    """The participant of one service: every command of it in `commands` (name -> domain function), served by one
    Lambda function each (`handler(name)`). A host that imports the module watches it being built (host_hooks)."""

    def __init__(
        self,
        *,
        service: str,
        commands: Mapping[str, DomainFunction],
        settings: ParticipantSettings,
        callbacks: TaskCallbacks | None = None,
        records: SagaRecordRepository | None = None,
        idempotency_client: Any = None,
        deliveries: Deliveries | None = None,
        bus: SagaBus | None = None,
    ) -> None:
        if not commands:
            raise ValueError(f"{service}: a participant serves at least one command")
        self.service = service
        self.commands: dict[str, DomainFunction] = dict(commands)
        self.settings = settings
        self.callbacks = callbacks or TaskCallbacks()
        self.records = records or SagaRecordRepository(settings.saga_table_name)
        self.deliveries = deliveries or Deliveries()
        self.bus = bus or SagaBus(settings.saga_bus_name)
        idempotency_client = idempotency_client or boto3.client("dynamodb")

        def persistence() -> DynamoDBPersistenceLayer:
            # One per idempotent function: Powertools keeps the key expression and prefix on the layer.
            return DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=idempotency_client)

        # A step runs once per step and kind, whatever the task attempt; each further token is answered once. Every
        # key starts with "<service>.", the prefix IAM may restrict a participant's idempotency items to.
        self._step_idempotency = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_replayed,
        )
        self._answer_idempotency = IdempotencyConfig(
            event_key_jmespath="[idempotency_key, task_token]",  # hashed: the token itself is not stored
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_replayed,
        )
        self._run_step_once: dict[CommandKind, Callable[..., dict[str, Any]]] = {
            kind: idempotent_function(
                self._run_step,
                data_keyword_argument="command",
                persistence_store=persistence(),
                config=self._step_idempotency,
                key_prefix=f"{service}.{kind}",
            )
            for kind in ("action", "compensation")
        }
        self._answer_again_once: dict[CommandKind, Callable[..., dict[str, Any]]] = {
            kind: idempotent_function(
                self._answer_again,
                data_keyword_argument="command",
                persistence_store=persistence(),
                config=self._answer_idempotency,
                key_prefix=f"{service}.{kind}.answer",
            )
            for kind in ("action", "compensation")
        }
        self._processor = BatchProcessor(event_type=EventType.SQS)
        self._handlers: dict[str, Callable[..., Any]] = {}
        host_hooks.announce(self)

    def handler(self, command: str) -> Callable[..., Any]:
        """The Lambda entry point of the function that serves `command` (Powertools' context, tracing and metrics
        around `handle`); it refuses a command of any other name."""
        if command not in self.commands:
            raise ValueError(f"{self.service} serves {', '.join(sorted(self.commands))}; not {command}")
        if command not in self._handlers:
            self._handlers[command] = _lambda_handler(partial(self.handle, command))
        return self._handlers[command]

    def handle(self, command: str, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """One SQS batch for the function that serves `command`; partial batch failures for SQS."""
        return self._handle_batch(event, context, command)

    def _handle_batch(self, event: dict[str, Any], context: LambdaContext, served: str) -> dict[str, Any]:
        # Without the context a timed-out invocation would hold its INPROGRESS lock until expiry.
        self._step_idempotency.register_lambda_context(context)
        self._answer_idempotency.register_lambda_context(context)
        records = event.get("Records", [])
        # Every batch counts, even one of only malformed messages (which would otherwise publish no metric).
        metrics.add_metric(name="CommandsReceived", unit=MetricUnit.Count, value=len(records))
        parsed = {record.get("messageId"): _parse(record.get("body", "")) for record in records}
        schedule, stale = self._pick_up(records, parsed)
        try:
            with self.callbacks.heartbeats_for(schedule):
                return process_partial_response(
                    event=event,
                    record_handler=partial(
                        self._handle_record, served=served, parsed=parsed, schedule=schedule, stale=stale
                    ),
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

    def _pick_up(
        self, records: list[dict[str, Any]], parsed: dict[str, SagaCommand | str]
    ) -> tuple[HeartbeatSchedule, set[str]]:
        """A batch's commands run one after another, each from its own task's clock: the window of each opened when
        Step Functions sent it. A fresh one gets its first beat one interval after that. One that waited an interval
        or more in its queue (or whose send time is unknown, or whose interval is tiny) is beaten now, before the batch
        runs: that renews its window, and a refusal says its task already ended. Returns the schedule of the tasks
        still waiting, and the message ids of the stale commands to shed."""
        schedule = HeartbeatSchedule()
        stale: set[str] = set()
        for record in records:
            command = parsed.get(record.get("messageId"))
            if not isinstance(command, SagaCommand) or command.task_token is None:
                continue
            every = command.heartbeat_seconds * self.settings.time_scale / HEARTBEATS_PER_INTERVAL
            queued = _queued_seconds(record)
            if queued is not None and every >= MIN_DEFERRED_BEAT_INTERVAL_SECONDS and queued < every:
                schedule.add(command.task_token, every, first_beat_in=every - queued)
                continue
            try:
                self.callbacks.heartbeat(command.task_token)
            except LateCallback:
                if _receives(record) == 1:
                    stale.add(record.get("messageId", ""))
                continue  # its task is gone: nothing to keep alive
            except Exception as error:
                missed_heartbeat(error)
                schedule.add(command.task_token, every, first_beat_in=0.0)  # the heartbeat thread tries again
                continue
            schedule.add(command.task_token, every, first_beat_in=every)
        return schedule, stale

    def _handle_record(
        self,
        record: SQSRecord,
        served: str,
        parsed: dict[str, SagaCommand | str],
        schedule: HeartbeatSchedule,
        stale: set[str],
    ) -> None:
        command = parsed.get(record.message_id)
        if not isinstance(command, SagaCommand):
            raise MalformedCommand(command or "not a saga command")
        if command.command != served:
            raise CommandOnWrongQueue(f"{command.kind} command {command.command} reached the function of {served}")
        logger.append_keys(**command.log_keys())
        if record.message_id in stale:
            # Handled: SQS deletes it. Nothing waits for its answer, and the domain never ran for it.
            self._count(metric_names.STALE_COMMANDS_SHED)
            logger.info("Stale command shed: its task ended while it waited in the queue")
            logger.remove_keys(list(command.log_keys()))
            return
        try:
            self._execute(command, schedule)
        except TransientUnderChoreography as transient:
            self._retry_or_fail(command, transient.failure, record)
        except DeliveryInProgress:
            self._come_back_soon(record, command)
            raise
        finally:
            schedule.discard(command.task_token)
            logger.remove_keys(list(command.log_keys()))

    def _execute(self, command: SagaCommand, schedule: HeartbeatSchedule) -> None:
        """Run one command and answer it (its task token, or the saga bus); raises only when SQS should redeliver it."""
        try:
            stored = self._run_step_once[command.kind](command=command, schedule=schedule)
        except IdempotencyAlreadyInProgressError:
            self._count("DuplicateDelivery")
            raise DeliveryInProgress(f"{command.kind} {command.command}: another delivery is running it") from None
        except TransientFailure as failure:
            if command.reply == "bus":
                raise TransientUnderChoreography(failure) from None
            self._answer_transient_failure(command, failure)
            return
        if not stored.get("replayed"):
            return  # this delivery ran the step
        if command.reply == "bus" and command.kind == "action" and command.retriable:
            # The tracker requested a forward-recovered step again (its deadline passed): its answer is the stored
            # outcome, published again if the record still waits for it (a plain duplicate finds it answered)
            self._publish(command, _stored_outcome(stored), fresh_claim_only=True)
            return
        if command.task_token is None or stored.get("token") == _digest(command.task_token):
            # SQS delivers at least once: this step ran and this token's answer was given (or settled) already.
            self._count("DuplicateDelivery")
            logger.info("Duplicate delivery of a command whose answer was already given; nothing to do")
            return
        # A fresh token for a step that ran: the task was retried. Answer it from the stored outcome, once.
        try:
            again = self._answer_again_once[command.kind](command=command, stored=stored, schedule=schedule)
        except IdempotencyAlreadyInProgressError:
            self._count("DuplicateDelivery")
            raise DeliveryInProgress(f"{command.kind} {command.command}: another delivery is answering") from None
        if again.get("replayed"):
            self._count("DuplicateDelivery")
            logger.info("Duplicate delivery of a retried task's command, already answered; nothing to do")

    def _come_back_soon(self, record: SQSRecord, command: SagaCommand) -> None:
        """This delivery met another's lock: keep its task alive, and have SQS bring it back within the window."""
        if command.task_token is not None:
            try:
                self.callbacks.heartbeat(command.task_token)
            except LateCallback:
                pass  # the task ended: the redelivery will find out what to do
            except Exception as error:
                missed_heartbeat(error)
        receives = int(record.attributes.get("ApproximateReceiveCount") or 1)
        if receives <= QUICK_RETURNS_ON_LOCK:
            seconds = max(1, int(command.heartbeat_seconds * self.settings.time_scale / 2))
            self.deliveries.redeliver_after(record.event_source_arn, record.receipt_handle, seconds)

    def _run_step(self, command: SagaCommand, schedule: HeartbeatSchedule) -> dict[str, Any]:
        """The unit that runs once per idempotency key: the domain function, the saga record's marks, the answer.

        What it returns is stored; a later delivery of the same key gets it back marked by `_replayed`."""
        started = time.monotonic()
        compensating = command.kind == "compensation"
        if compensating:
            self.records.compensation_started(command.saga_id, command.step)
        try:
            outcome = self._run_domain(command)
        except TransientFailure as failure:
            self._step_metrics(command, started, succeeded=False)
            if command.task_token is not None or command.reply == "bus":
                raise  # nothing stored: the retry (the state machine's, or the command sent again) runs it again
            outcome = _rejected(failure, command)  # an operator's run: its outcome goes on the record like any other
        else:
            self._record_latency(started)
            self._step_metrics(command, started, succeeded=outcome["outcome"] == "succeeded")
        if compensating:
            self._mark_compensation(command, outcome)
        if command.reply == "bus":
            return {**outcome, "answer": self._publish(command, outcome).value}
        if command.task_token is None:
            if not compensating:  # an operator's run of a stalled retriable step: the record is its only answer
                self._mark_action(command, outcome)
            return outcome
        answer = self._answer(command, outcome, schedule)
        return {**outcome, "token": _digest(command.task_token), "answer": answer.value}

    def _answer_again(
        self, command: SagaCommand, stored: dict[str, Any], schedule: HeartbeatSchedule
    ) -> dict[str, Any]:
        """The unit that runs once per fresh token of a step that ran: answer it from the stored outcome."""
        return {"answer": self._answer(command, _stored_outcome(stored), schedule).value}

    def _run_domain(self, command: SagaCommand) -> dict[str, Any]:
        """The domain function's outcome; a rejection is an outcome and is stored too."""
        try:
            return {"outcome": "succeeded", "result": self.commands[command.command](command)}
        except PermanentFailure as failure:
            return _rejected(failure, command)

    def _answer(self, command: SagaCommand, outcome: dict[str, Any], schedule: HeartbeatSchedule) -> Answer:
        assert command.task_token is not None
        succeeded = outcome["outcome"] == "succeeded"
        try:
            if succeeded:
                self.callbacks.succeed(command.task_token, outcome["result"])
            else:
                self.callbacks.fail(command.task_token, outcome["error"], outcome["cause"])
        except LateCallback as late:
            return self._after_refusal(command, outcome, reason=str(late))
        finally:
            schedule.discard(command.task_token)
        if command.kind == "action":
            self._mark_action(command, outcome)
        self._count("CommandSucceeded" if succeeded else "CommandRejected")
        return Answer.GIVEN

    def _publish(
        self, command: SagaCommand, outcome: dict[str, Any], *, stalled: bool = False, fresh_claim_only: bool = False
    ) -> Answer:
        """Choreography's answer: an action claims its step's outcome on the saga record, then publishes it; a
        compensation (marked already) publishes its own. `stalled`: a forward-recovered step's failure after its
        retries (the saga parks); `fresh_claim_only`: publish only if this claim is the one that answers the step."""
        succeeded = outcome["outcome"] == "succeeded"
        if command.kind == "action" and not self._claim(command, outcome, fresh_only=fresh_claim_only):
            return self._after_refusal(command, outcome, reason="the saga record holds another outcome for the step")
        results = dict(command.results)
        if command.kind == "action" and succeeded:
            results[command.step] = outcome["result"]
        if command.kind == "action":
            event_outcome = "Succeeded" if succeeded else "Stalled" if stalled else "Failed"
        else:
            event_outcome = "Compensated" if succeeded else "CompensationFailed"
        saga_error = command.error if command.kind == "compensation" else None
        self.bus.publish(
            SagaEventDetail(
                saga_id=command.saga_id,
                saga_type=command.saga_type,
                step=command.step,
                kind=command.kind,
                outcome=event_outcome,
                idempotency_key=command.idempotency_key,
                input=command.input,
                results=results,
                error=None if succeeded else outcome["error"],
                cause=None if succeeded else outcome["cause"],
                saga_error={key: str(value) for key, value in saga_error.items()} if saga_error else None,
            )
        )
        self._count("CommandSucceeded" if succeeded else "CommandRejected")
        return Answer.GIVEN

    def _claim(self, command: SagaCommand, outcome: dict[str, Any], *, fresh_only: bool = False) -> bool:
        """Claim the action's outcome on the saga record (conditional on the step RUNNING); a delivery that finds its
        own claim there (an earlier delivery claimed, then died before publishing) may publish it again, unless
        `fresh_only`."""
        succeeded = outcome["outcome"] == "succeeded"
        status = StepStatus.SUCCEEDED if succeeded else StepStatus.FAILED
        if succeeded:
            claimed = self.records.action_claimed(
                command.saga_id, command.step, status, next_step=command.next_step, result=outcome["result"]
            )
        else:
            claimed = self.records.action_claimed(
                command.saga_id, command.step, status, error=outcome["error"], cause=outcome["cause"]
            )
        if claimed or fresh_only:
            return claimed
        record = self.records.progress(command.saga_id) or {}
        mine = (record.get("steps") or {}).get(command.step) or {}
        return mine.get("status") == status and (succeeded or mine.get("error") == outcome["error"])

    def _retry_or_fail(self, command: SagaCommand, failure: TransientFailure, record: SQSRecord) -> None:
        """Choreography's retry of a transient failure: the command again on its own queue after the definition's
        backoff (with jitter), its attempt counted; out of attempts (or an error the policy does not list), the step
        fails with the transient error's name."""
        self._count("CommandFailedTransiently")
        policy = command.retry
        retried = policy is not None and failure.error in policy.errors
        if retried and command.attempt <= policy.max_attempts:
            delay = min(
                policy.max_delay_seconds, policy.interval_seconds * policy.backoff_rate ** (command.attempt - 1)
            )
            if policy.jitter == "FULL":
                delay = random.uniform(0, delay)  # jitter, not a secret
            again = command.model_copy(update={"attempt": command.attempt + 1})
            self.deliveries.send_again(
                record.event_source_arn,
                again.model_dump_json(exclude_none=True),
                round(delay * self.settings.time_scale),
            )
            self._count("CommandRetried")
            return
        outcome = _rejected(failure, command)
        if command.kind == "compensation":
            self._mark_compensation(command, outcome)
        # A forward-recovered step out of retries of an error they cover stalls (its outcome unknown, the saga parks);
        # an error they do not cover is a refusal, as under orchestration
        self._publish(command, outcome, stalled=command.retriable and retried)

    def _answer_transient_failure(self, command: SagaCommand, failure: TransientFailure) -> None:
        self._count("CommandFailedTransiently")
        assert command.task_token is not None
        try:
            self.callbacks.fail(command.task_token, failure.error, redact(failure.cause, command.input))
        except LateCallback:
            logger.info("Failure callback refused: the task already ended; nothing was applied")

    def _mark_action(self, command: SagaCommand, outcome: dict[str, Any]) -> None:
        """Step Functions took this action's answer: the saga record says so (and, on success, that the next step
        runs). Written only now, so that a step recorded SUCCEEDED is one its saga kept."""
        if outcome["outcome"] == "succeeded":
            self.records.action_answered(
                command.saga_id,
                command.step,
                StepStatus.SUCCEEDED,
                next_step=command.next_step,
                result=outcome["result"],
            )
        else:
            self.records.action_answered(
                command.saga_id, command.step, StepStatus.FAILED, error=outcome["error"], cause=outcome["cause"]
            )

    def _mark_compensation(self, command: SagaCommand, outcome: dict[str, Any]) -> None:
        if outcome["outcome"] == "succeeded":
            self.records.compensation_finished(
                command.saga_id, command.step, StepStatus.COMPENSATED, result=outcome["result"]
            )
        else:
            self.records.compensation_finished(
                command.saga_id,
                command.step,
                StepStatus.COMPENSATION_FAILED,
                error=outcome["error"],
                cause=outcome["cause"],
            )

    def _after_refusal(self, command: SagaCommand, outcome: dict[str, Any], *, reason: str) -> Answer:
        """The task no longer waits for this token: it was answered (an earlier delivery, a retry, a duplicate) or it
        timed out. Take the effect back only if the saga did not keep the step."""
        self._count("LateCallback")
        logger.warning("Answer refused: the task no longer waits for this token", extra={"reason": reason})
        if command.kind == "compensation" or outcome["outcome"] != "succeeded" or command.retriable:
            # A compensation is never undone, a rejection applied nothing, and a retriable step's (or the pivot's)
            # retry answers with this same outcome (forward recovery never undoes).
            return Answer.REFUSED
        verdict, mine = self._verdict(command)
        if verdict is Verdict.KEPT:
            self._count("LateActionKept")
            if mine in (StepStatus.NOT_STARTED, StepStatus.RUNNING):  # its answer was taken, its mark got lost
                self._mark_action(command, outcome)
            return Answer.KEPT
        if verdict is Verdict.NOT_KEPT:
            self._undo_late_action(command)
            return Answer.UNDONE
        self._count("LateActionUndecided")
        raise LateActionUndecided(
            f"{command.command}: success refused, and the saga record shows neither that the saga kept "
            f"step {command.step} nor that it gave it up"
        )

    def _verdict(self, command: SagaCommand) -> tuple[Verdict, str | None]:
        """Did the saga keep this action's step? Read from its record (and the step's own status on it)."""
        record = self.records.progress(command.saga_id)
        if record is None:
            return Verdict.UNDECIDED, None
        steps = record.get("steps") or {}

        def status_of(step: str) -> str:
            return (steps.get(step) or {}).get("status", StepStatus.NOT_STARTED.value)

        mine = status_of(command.step)
        if mine in UNDOING_STEP or mine == StepStatus.FAILED:
            return Verdict.NOT_KEPT, mine  # the saga undoes this step, or took its failure
        if mine == StepStatus.SUCCEEDED or record.get("status") == SagaStatus.COMPLETED:
            return Verdict.KEPT, mine
        if command.next_step is not None and status_of(command.next_step) != StepStatus.NOT_STARTED:
            return Verdict.KEPT, mine  # the saga went on past this step
        compensated_past = command.previous_step is not None and status_of(command.previous_step) in UNDOING_STEP
        if compensated_past or record.get("status") == SagaStatus.FAILED:
            # A step the saga kept is compensated before the one before it, and before the saga ends FAILED.
            return Verdict.NOT_KEPT, mine
        return Verdict.UNDECIDED, mine

    def _undo_late_action(self, command: SagaCommand) -> None:
        """The saga did not keep this step: take our own effect back with the step's compensation (idempotent, so this
        is harmless where the saga compensates the step too)."""
        undo = self.commands.get(command.compensation) if command.compensation else None
        if undo is None:
            # Redelivered until it can be undone; if it never can, the DLQ alarm fires for a human.
            raise LateActionNotUndone(
                f"late action {command.command} could not be undone: {self.service} serves no compensation "
                f"{command.compensation or '(the command names none)'}"
            )
        compensation = command.model_copy(update={"kind": "compensation", "command": command.compensation})
        try:
            undo(compensation)
        except ParticipantFailure as failure:
            # Redelivered until it works; if it never does, the DLQ alarm fires for a human.
            raise LateActionNotUndone(f"late action could not be undone: {failure.error}") from failure
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


def _replayed(stored: dict[str, Any], _record: Any) -> dict[str, Any]:
    """Powertools' response hook: what a delivery gets back when its key's unit already ran."""
    return {**stored, "replayed": True}


def _stored_outcome(stored: dict[str, Any]) -> dict[str, Any]:
    """The outcome fields of what a step's idempotency record stored."""
    return {field: stored[field] for field in OUTCOME_FIELDS if field in stored}


def _rejected(failure: ParticipantFailure, command: SagaCommand) -> dict[str, Any]:
    return {"outcome": "rejected", "error": failure.error, "cause": redact(failure.cause, command.input)}


def _digest(task_token: str) -> str:
    """What is stored of a task token (a bearer credential): its SHA-256."""
    return hashlib.sha256(task_token.encode()).hexdigest()


def _parse(body: str) -> SagaCommand | str:
    """The command in a message body, or why it is none (names fields only: the body may hold a token)."""
    try:
        return parse_command(body)
    except MalformedCommand as error:
        return str(error)


def _receives(record: dict[str, Any]) -> int:
    """How many times SQS has handed this message out, this time included."""
    return int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)


def _queued_seconds(record: dict[str, Any]) -> float | None:
    """Seconds since SQS accepted the message (its SentTimestamp, epoch milliseconds), None if absent."""
    sent = (record.get("attributes") or {}).get("SentTimestamp")
    return None if not sent else max(0.0, time.time() - int(sent) / 1000)


def _lambda_handler(handle: Callable[[dict[str, Any], LambdaContext], dict[str, Any]]) -> Callable[..., Any]:
    """The Lambda entry point: Powertools context, tracing and metrics around one toolkit call."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return handle(event, context)

    return handler

"""The fault matrix of a saga definition: every step x every fault, each with its outcome derived from the definition.

Nothing here is read from a run: the expected outcome of a cell follows from the definition's semantics alone
(the steps completed before step k, their compensations in reverse order, whether a timed-out step is compensated
too, the retry budgets, the pivot and the retriable steps past it). So a step added to the definition gets its cells,
and their expectations, without editing a test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from saga_records import SagaStatus
from saga_testkit.faults import Fault
from statemachines import SagaDefinition, Step

TIMEOUT_ERROR = "States.Timeout"
# Error names for injected failures a step does not list itself (any unlisted error is caught as permanent).
INJECTED_PERMANENT_ERROR = "Injected.PermanentFailure"
INJECTED_COMPENSATION_ERROR = "Injected.CompensationRejected"
TIMEOUTS_WITHIN_PATIENCE = 2  # timeouts injected into a compensation that retries nothing else


@dataclass(frozen=True)
class PlannedFault:
    step: str
    kind: str  # "action" | "compensation"
    fault: Fault


@dataclass(frozen=True)
class ExpectedOutcome:
    status: SagaStatus
    error: str | None  # the saga record's error (what started compensating); None when it completed
    actions_succeeded: tuple[str, ...]  # in order, from the execution history
    compensations_succeeded: tuple[str, ...]  # in order, from the execution history
    parked_step: str | None = None  # the record's failed_step of a parked saga
    compensation_error: str | None = None
    dead_lettered: tuple[tuple[str, str], ...] = ()  # (step, kind) whose queue's DLQ holds this saga's command
    late_redelivery: tuple[str, str] | None = None  # (step, kind) whose crashed command is delivered again later
    acted_unanswered: tuple[str, ...] = ()  # steps whose action took effect but whose answer never arrived


@dataclass(frozen=True)
class FaultCell:
    step: str
    fault: str  # the fault's name in the matrix
    plans: tuple[PlannedFault, ...]
    expected: ExpectedOutcome

    @property
    def id(self) -> str:
        return f"{self.step}-{self.fault}"


@dataclass(frozen=True)
class NotApplicable:
    """A (step, fault) pair the definition makes meaningless, with the reason (reported as a skipped test)."""

    step: str
    fault: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.step}-{self.fault}"


FAULTS = (
    "permanent",
    "transient_within_retries",
    "transient_beyond_retries",
    "lost_reply",
    "crash_after_acting",
    "duplicate_delivery",
    "poison_message",
    "compensation_transient",
    "compensation_permanent",
)


def fault_matrix(definition: SagaDefinition) -> list[FaultCell | NotApplicable]:
    """One entry per step and fault in FAULTS, in definition order."""
    return [_cell(definition, index, fault) for index in range(len(definition.steps)) for fault in FAULTS]


def _names(steps: list[Step]) -> tuple[str, ...]:
    return tuple(step.name for step in steps)


def _cell(definition: SagaDefinition, index: int, fault: str) -> FaultCell | NotApplicable:
    steps = definition.steps
    step = steps[index]
    everything = _names(steps)
    completed = steps[:index]

    def action(planned: Fault) -> tuple[PlannedFault, ...]:
        return (PlannedFault(step.name, "action", planned),)

    def completes() -> ExpectedOutcome:
        return ExpectedOutcome(SagaStatus.COMPLETED, None, everything, ())

    def parks(error: str) -> ExpectedOutcome:
        """Past the go/no-go point nothing is compensated: the saga parks for forward recovery at this step."""
        return ExpectedOutcome(SagaStatus.FORWARD_RECOVERY_FAILED, error, _names(completed), (), parked_step=step.name)

    def compensates(error: str, *, including_this_step: bool) -> ExpectedOutcome:
        """The forward path stops at this step; what completed is undone, last first."""
        if step.retriable:
            return parks(error)
        undone = steps[: index + 1] if including_this_step else completed
        return ExpectedOutcome(SagaStatus.FAILED, error, _names(completed), _names(list(reversed(undone))))

    def retries_run_out(error: str) -> ExpectedOutcome:
        """A transient error or a timeout past the step's retries: the pivot's outcome is then unknown, so it parks
        like a retriable step; any other step compensates."""
        if step.forward_recovery:
            return parks(error)
        return compensates(error, including_this_step=error == TIMEOUT_ERROR and step.on_timeout == "compensate")

    def times_out() -> ExpectedOutcome:
        """No answer: the heartbeat times out. The pivot and a retriable step retry timeouts; the retry is answered."""
        if step.forward_recovery and step.action_retry.max_attempts > 0:
            return completes()
        return retries_run_out(TIMEOUT_ERROR)

    if fault == "permanent":
        # (the pivot's refusal compensates the steps before it, as any compensatable step's does)
        error = step.permanent_errors[0] if step.permanent_errors else INJECTED_PERMANENT_ERROR
        expected = compensates(error, including_this_step=False)
        return FaultCell(step.name, fault, action(Fault.permanent(error)), expected)
    if fault in ("transient_within_retries", "transient_beyond_retries"):
        if not step.has_retry:
            return NotApplicable(step.name, fault, "the step lists no transient errors")
        budget = step.retry.max_attempts
        if budget == 0 and fault == "transient_within_retries":
            return NotApplicable(step.name, fault, "the step's retry policy allows no retries")
        error = step.retry.errors[0]
        if fault == "transient_within_retries":
            return FaultCell(step.name, fault, action(Fault.transient(error, times=budget)), completes())
        expected = retries_run_out(error)
        return FaultCell(step.name, fault, action(Fault.transient(error, times=budget + 1)), expected)
    if fault == "lost_reply":
        expected = times_out()
        if expected.status != SagaStatus.COMPLETED:
            expected = _with(expected, acted_unanswered=(step.name,))
        return FaultCell(step.name, fault, action(Fault.lost_reply()), expected)
    if fault == "crash_after_acting":
        # The crashed command comes back after its visibility timeout and runs the domain again (the crash kept no
        # outcome), which finds its effect; so does the retry of a step that retries its timeouts, if that comes first
        expected = _with(times_out(), late_redelivery=(step.name, "action"))
        return FaultCell(step.name, fault, action(Fault.crash_after_acting()), expected)
    if fault == "duplicate_delivery":
        return FaultCell(step.name, fault, action(Fault.duplicate_delivery()), completes())
    if fault == "poison_message":
        expected = _with(times_out(), dead_lettered=((step.name, "action"),))
        return FaultCell(step.name, fault, action(Fault.poison_message()), expected)
    return _compensation_cell(definition, index, fault)


def _compensation_cell(definition: SagaDefinition, index: int, fault: str) -> FaultCell | NotApplicable:
    """Make the saga compensate this step (a later step fails, or this one times out), and fault its compensation."""
    steps = definition.steps
    step = steps[index]
    if step.compensation is None:
        kind = "the pivot" if step.pivot else "a retriable step"
        return NotApplicable(step.name, fault, f"{kind} has no compensation")
    later = steps[index + 1] if index + 1 < len(steps) else None
    if later is not None and not later.retriable:
        error = later.permanent_errors[0] if later.permanent_errors else INJECTED_PERMANENT_ERROR
        trigger = PlannedFault(later.name, "action", Fault.permanent(error))
        actions = _names(steps[: index + 1])
        unanswered = ()
    elif step.on_timeout == "compensate":
        error = TIMEOUT_ERROR
        trigger = PlannedFault(step.name, "action", Fault.lost_reply())
        actions = _names(steps[:index])
        unanswered = (step.name,)
    else:
        return NotApplicable(step.name, fault, "nothing after this step fails into its compensation")
    policy = step.effective_compensation_retry
    undone = _names(list(reversed(steps[: index + 1])))
    if fault == "compensation_transient":
        if policy.max_attempts == 0:
            return NotApplicable(step.name, fault, "the compensation's retry policy allows no retries")
        times = policy.max_attempts
        if policy.errors[0] == TIMEOUT_ERROR:
            # Its only retried error is a timeout, each retry a heartbeat window or more later: a couple show it is
            # retried, without waiting out the whole patient budget.
            times = min(times, TIMEOUTS_WITHIN_PATIENCE)
        planned = PlannedFault(step.name, "compensation", Fault.transient(policy.errors[0], times=times))
        expected = ExpectedOutcome(SagaStatus.FAILED, error, actions, undone, acted_unanswered=unanswered)
        return FaultCell(step.name, fault, (trigger, planned), expected)
    planned = PlannedFault(step.name, "compensation", Fault.permanent(INJECTED_COMPENSATION_ERROR))
    # Compensations run last step first: those before this step's succeeded, then the saga parks here.
    expected = ExpectedOutcome(
        SagaStatus.COMPENSATION_FAILED,
        error,
        actions,
        undone[: undone.index(step.name)],
        parked_step=step.name,
        compensation_error=INJECTED_COMPENSATION_ERROR,
        acted_unanswered=unanswered,
    )
    return FaultCell(step.name, fault, (trigger, planned), expected)


def _with(expected: ExpectedOutcome, **changes: object) -> ExpectedOutcome:
    return replace(expected, **changes)

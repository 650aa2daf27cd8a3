"""Saga definitions: the YAML a team writes, validated strictly before anything is generated.

A definition that is wrong fails here, at synth, with the file, the step and the field named, so that a
bad saga never reaches Step Functions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from statemachines.admission import Admission, AdmissionLimits

SAGA_FILE_SUFFIX = ".saga.yaml"
DEFINITIONS_DIR = Path(__file__).resolve().parent / "sagas"  # a team's sagas; this package is the compiler
SERVICES_PACKAGE = "services"  # lambdas/services/: one package per participant service
SAGA_INPUTS_PACKAGE = "sagas"  # lambdas/sagas/<saga in snake_case>.py: each saga's input model, a class `Input`
INPUT_MODEL = "Input"

# Step Functions hard limit on history events per execution; each task attempt writes about five.
MAX_HISTORY_EVENTS = 25_000
EVENTS_PER_TASK_ATTEMPT = 5
# Step Functions caps a Retrier's MaxAttempts at 99,999,999; we keep retry loops far below history limits.
MAX_RETRY_ATTEMPTS = 20
# Under choreography a participant retries a transient failure by sending its command back to its own queue with
# SQS DelaySeconds, which is at most 900 s: a longer retry wait cannot be expressed.
SQS_MAX_DELAY_SECONDS = 900
Pattern = Literal["orchestration", "choreography"]

PascalName = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")]
# One URL path segment of the API (lower-case words joined by '-'), and a field name of the saga's input model.
RoutePath = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
SnakeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,47}$")]
ErrorName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,127}$")]


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def kebab_case(name: str) -> str:
    return snake_case(name).replace("_", "-")


class SagaDefinitionError(ValueError):
    """A saga definition that cannot be compiled; the message names the file, step and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sla(_Strict):
    timeout_seconds: int = Field(ge=1, le=31_536_000)  # hard cap on the task, seconds (max one year)
    heartbeat_seconds: int = Field(ge=1)  # longest silence from the participant, seconds

    @model_validator(mode="after")
    def _heartbeat_below_timeout(self) -> Sla:
        if self.heartbeat_seconds >= self.timeout_seconds:
            raise _field_error(
                "heartbeat_seconds",
                f"must be below timeout_seconds ({self.timeout_seconds}), got {self.heartbeat_seconds}",
            )
        return self


# Retry defaults (documented in the README): what a `retry` block gets for a field it leaves out.
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INTERVAL_SECONDS = 2
DEFAULT_BACKOFF_RATE = 2.0
DEFAULT_MAX_DELAY_SECONDS = 30  # raised to interval_seconds when that is longer
# A compensation retries at least this much by default: it must not give up on a saga lightly.
DEFAULT_COMPENSATION_MAX_ATTEMPTS = 5
DEFAULT_COMPENSATION_MAX_DELAY_SECONDS = 60
# A compensation that timed out most likely waited out its heartbeat window in a backlog (an undo is quick and its
# participant answers or fails it otherwise): it is retried patiently, on a budget of its own. The first retry waits a
# heartbeat window, each next one twice as long up to 5 minutes, so a backlog drains before the next copy joins it
# (the participant sheds the stale copies): about half an hour of patience for a 30 s window.
DEFAULT_COMPENSATION_TIMEOUT_ATTEMPTS = 6
DEFAULT_COMPENSATION_TIMEOUT_BACKOFF_RATE = 2.0
DEFAULT_COMPENSATION_TIMEOUT_MAX_DELAY_SECONDS = 300
TIMEOUT_ERROR = "States.Timeout"
_BACKOFF_FIELDS = ("interval_seconds", "backoff_rate", "max_delay_seconds", "jitter")


class RetryPolicy(_Strict):
    errors: list[ErrorName]
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=0, le=MAX_RETRY_ATTEMPTS)
    interval_seconds: int = Field(default=DEFAULT_INTERVAL_SECONDS, ge=1)
    backoff_rate: float = Field(default=DEFAULT_BACKOFF_RATE, ge=1.0, le=10.0)
    max_delay_seconds: int = Field(default=0, ge=0)  # 0: the default, DEFAULT_MAX_DELAY_SECONDS or the interval
    jitter: Literal["FULL", "NONE"] = "FULL"

    @model_validator(mode="after")
    def _sane(self) -> RetryPolicy:
        if not self.errors:
            raise _field_error(
                "errors", "list the transient errors to retry, or leave `retry` out for a step that has none"
            )
        if "States.ALL" in self.errors:
            raise _field_error("errors", "States.ALL would retry permanent failures; list the transient errors")
        if self.max_attempts == 0:
            contradicting = [name for name in _BACKOFF_FIELDS if name in self.model_fields_set]
            if contradicting:
                raise _field_error(
                    contradicting[0],
                    f"max_attempts is 0, so nothing is retried and {', '.join(contradicting)} would never apply: "
                    "remove them, or allow retries",
                )
        if "max_delay_seconds" not in self.model_fields_set:
            object.__setattr__(self, "max_delay_seconds", max(DEFAULT_MAX_DELAY_SECONDS, self.interval_seconds))
        elif self.max_delay_seconds < self.interval_seconds:
            raise _field_error(
                "max_delay_seconds",
                f"must be at least interval_seconds ({self.interval_seconds}), got {self.max_delay_seconds}",
            )
        return self

    def with_errors(self, errors: list[str]) -> RetryPolicy:
        return self.model_copy(update={"errors": errors})


# A step without transient errors: no `retry` block, nothing retried but the delivery of its command.
NO_RETRY = RetryPolicy.model_construct(
    errors=[],
    max_attempts=0,
    interval_seconds=DEFAULT_INTERVAL_SECONDS,
    backoff_rate=DEFAULT_BACKOFF_RATE,
    max_delay_seconds=DEFAULT_MAX_DELAY_SECONDS,
    jitter="FULL",
)


class Step(_Strict):
    name: SnakeName
    service: PascalName
    action: PascalName
    # Absent only for the pivot and a retriable step: neither is ever compensated.
    compensation: PascalName | None = None
    # The go/no-go step: a permanent failure compensates the steps before it; anything else (a timeout, whose outcome
    # is unknown, and its transient errors) is retried, and parks the saga for forward recovery once retries run out.
    pivot: bool = False
    # Past the pivot: must eventually succeed, so retried, never compensated.
    retriable: bool = False
    sla: Sla
    # The step's transient errors and how to retry them; left out, the step has none (see NO_RETRY).
    retry: RetryPolicy = NO_RETRY
    # Retries of the compensation; by default the step's transient errors plus timeouts, more patiently.
    compensation_retry: RetryPolicy | None = None
    permanent_errors: list[ErrorName] = Field(default_factory=list)
    # "compensate": a timed-out step may have taken effect, so it is compensated too (the safe default).
    on_timeout: Literal["compensate", "assume_not_applied"] = "compensate"

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        if self.pivot and self.retriable:
            raise _field_error("retriable", "the pivot is not retriable: its permanent failure compensates the saga")
        if self.pivot and self.compensation is not None:
            raise _field_error("compensation", "the pivot is never compensated (past it the saga only goes forward)")
        if self.retriable and self.compensation is not None:
            raise _field_error("compensation", "a retriable step is never compensated; remove the compensation")
        if not self.forward_recovery and self.compensation is None:
            raise _field_error("compensation", "required unless the step is the pivot or retriable")
        if self.compensation is not None and self.compensation == self.action:
            raise _field_error("compensation", "must differ from the action")
        if self.forward_recovery and self.compensation_retry is not None:
            kind = "the pivot" if self.pivot else "a retriable step"
            raise _field_error("compensation_retry", f"{kind} has no compensation to retry")
        if self.pivot and "on_timeout" in self.model_fields_set:
            raise _field_error("on_timeout", "the pivot's timeout is retried, never compensated: remove it")
        if self.pivot and self.retry.max_attempts == 0 and "retry" in self.model_fields_set:
            raise _field_error(
                "retry.max_attempts", "the pivot retries its timeouts (its outcome is unknown): allow at least 1"
            )
        overlap = sorted(set(self.permanent_errors) & set(self.retry.errors))
        if overlap:
            raise _field_error("permanent_errors", f"also listed as transient in retry.errors: {', '.join(overlap)}")
        if "States.Timeout" in self.permanent_errors or "States.ALL" in self.permanent_errors:
            raise _field_error("permanent_errors", "States.* errors are routed by the compiler, not listed here")
        return self

    @property
    def has_retry(self) -> bool:
        """Whether the definition gave this step transient errors to retry."""
        return bool(self.retry.errors)

    @property
    def forward_recovery(self) -> bool:
        """The pivot or a retriable step: never compensated, its timeouts retried, its late answers never undone, and
        the saga parked FORWARD_RECOVERY_FAILED when its retries run out (an operator runs it again)."""
        return self.pivot or self.retriable

    @property
    def action_retry(self) -> RetryPolicy:
        """The retries the action really gets. The pivot and a retriable step also retry timeouts (a lost reply, a
        participant down: the outcome is unknown, the action idempotent), with the default policy when the step lists
        no transient errors."""
        if not self.forward_recovery:
            return self.retry
        base = self.retry if self.has_retry else RetryPolicy(errors=[TIMEOUT_ERROR])
        return base.with_errors([*base.errors, *([TIMEOUT_ERROR] if TIMEOUT_ERROR not in base.errors else [])])

    @property
    def compensation_retries(self) -> list[RetryPolicy]:
        """The compensation's retriers, in the order Step Functions matches them. A `compensation_retry` block is the
        only one. By default: the step's transient errors, more patiently than the action (at least 5 attempts, waits
        up to a minute); then timeouts on a budget of their own, each retry waiting at least a heartbeat window."""
        if self.compensation_retry is not None:
            return [self.compensation_retry]
        retries = []
        if self.has_retry:
            base = self.retry
            retries.append(
                RetryPolicy(
                    errors=[error for error in base.errors if error != TIMEOUT_ERROR],
                    max_attempts=max(base.max_attempts, DEFAULT_COMPENSATION_MAX_ATTEMPTS),
                    interval_seconds=base.interval_seconds,
                    backoff_rate=base.backoff_rate,
                    max_delay_seconds=max(base.max_delay_seconds, DEFAULT_COMPENSATION_MAX_DELAY_SECONDS),
                    jitter=base.jitter,
                )
            )
        retries.append(
            RetryPolicy(
                errors=[TIMEOUT_ERROR],
                max_attempts=DEFAULT_COMPENSATION_TIMEOUT_ATTEMPTS,
                interval_seconds=self.sla.heartbeat_seconds,
                backoff_rate=DEFAULT_COMPENSATION_TIMEOUT_BACKOFF_RATE,
                max_delay_seconds=max(DEFAULT_COMPENSATION_TIMEOUT_MAX_DELAY_SECONDS, self.sla.heartbeat_seconds),
                jitter="FULL",
            )
        )
        return [retry for retry in retries if retry.errors]

    @property
    def effective_compensation_retry(self) -> RetryPolicy:
        """The compensation's first retrier: its own transient errors' (its timeouts' when it lists none)."""
        return self.compensation_retries[0]

    @property
    def compensation_attempts(self) -> int:
        """Attempts of the compensation at most, every retrier used up."""
        return 1 + sum(retry.max_attempts for retry in self.compensation_retries)

    @property
    def package(self) -> str:
        """Python package that implements this step's service, as imported from the Lambda code root lambdas/
        (InventoryService -> services.inventory, the folder lambdas/services/inventory/)."""
        return f"{SERVICES_PACKAGE}.{snake_case(self.service.removesuffix('Service'))}"

    def handler(self, command: str) -> str:
        """Lambda handler of one of this step's commands (ReserveItems -> services.inventory.handlers.reserve_items)."""
        if command not in self.commands:
            raise KeyError(command)
        return f"{self.package}.handlers.{snake_case(command)}"

    @property
    def commands(self) -> list[str]:
        return [self.action] if self.compensation is None else [self.action, self.compensation]


class ApiRoute(_Strict):
    """The saga's front door: `POST /<path>` starts one, `GET /<path>/{id}` reads one, `GET /<path>?status=` lists."""

    path: RoutePath | None = None  # default: the saga's name in kebab-case (OrderFulfillment -> order-fulfillment)
    # The input field whose value is the saga id: one business object, one saga, whatever headers a request carries.
    id_field: FieldName


class SagaDefinition(_Strict):
    name: PascalName
    description: str = Field(min_length=1, max_length=512)
    # Optional: without it the route is the name in kebab-case and each start names its saga by Idempotency-Key.
    api: ApiRoute | None = None
    # Optional: how many starts the API takes of this saga (statemachines/admission.py has the defaults).
    admission: Admission = Field(default_factory=Admission)
    # orchestration: a Step Functions state machine sends each command and routes the failures; choreography: each
    # participant reacts to the previous step's event on the saga bus, and a tracker keeps the same saga record.
    pattern: Pattern = "orchestration"
    steps: list[Step] = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _consistent(self) -> SagaDefinition:
        seen_steps: set[str] = set()
        seen_commands: dict[str, str] = {}
        retriable_seen: str | None = None
        pivot_seen: str | None = None
        for index, step in enumerate(self.steps):
            if step.name in seen_steps:
                raise _step_error(index, "name", f"duplicate step name '{step.name}'")
            seen_steps.add(step.name)
            for command in step.commands:
                if command in seen_commands:
                    raise _step_error(
                        index, "action", f"command '{command}' is already used by step '{seen_commands[command]}'"
                    )
                seen_commands[command] = step.name
            if step.pivot:
                if pivot_seen is not None:
                    raise _step_error(index, "pivot", f"a saga has one pivot, and '{pivot_seen}' is already it")
                if retriable_seen is not None:
                    raise _step_error(
                        index,
                        "pivot",
                        f"the pivot cannot follow the retriable step '{retriable_seen}': its failure compensates "
                        "every step before it",
                    )
                pivot_seen = step.name
            elif step.retriable:
                retriable_seen = retriable_seen or step.name
            elif pivot_seen is not None:
                raise _step_error(
                    index,
                    "retriable",
                    f"every step after the pivot '{pivot_seen}' must be retriable: add retriable: true",
                )
            elif retriable_seen is not None:
                raise _step_error(
                    index,
                    "retriable",
                    f"a compensatable step cannot follow the retriable step '{retriable_seen}' (past the pivot)",
                )
        if self.pattern == "choreography":
            _check_choreographable(self.steps)
        worst_case_events = sum(
            EVENTS_PER_TASK_ATTEMPT
            * (step.action_retry.max_attempts + 1 + (step.compensation_attempts if step.compensation else 0))
            for step in self.steps
        )
        if worst_case_events > MAX_HISTORY_EVENTS // 2:
            raise _field_error(
                "steps",
                f"retry budget may write {worst_case_events} history events; keep it under {MAX_HISTORY_EVENTS // 2}",
            )
        return self

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def compensatable_steps(self) -> list[Step]:
        return [step for step in self.steps if step.compensation is not None]

    @property
    def pivot(self) -> Step | None:
        return next((step for step in self.steps if step.pivot), None)

    @property
    def admission_limits(self) -> AdmissionLimits:
        """What the API admits of this saga: the `admission:` block, its defaults filled in."""
        return AdmissionLimits.of(self.admission, steps=len(self.steps))

    @property
    def route_path(self) -> str:
        """The API's URL segment for this saga (`POST /<route_path>`)."""
        return self.api.path if self.api is not None and self.api.path else kebab_case(self.name)

    @property
    def id_field(self) -> str | None:
        """The input field that names the saga, or None: the client's Idempotency-Key header does."""
        return self.api.id_field if self.api is not None else None

    @property
    def input_module(self) -> str:
        """Module of the saga's input model, as imported from the Lambda code root (sagas.order_fulfillment)."""
        return f"{SAGA_INPUTS_PACKAGE}.{snake_case(self.name)}"


def _check_choreographable(steps: list[Step]) -> None:
    """What a choreographed saga cannot express: a retry wait longer than SQS DelaySeconds allows."""
    for index, step in enumerate(steps):
        policies = {"retry": step.retry}
        if step.compensation is not None:
            policies["compensation_retry"] = step.effective_compensation_retry
        for name, policy in policies.items():
            if policy.max_attempts and policy.max_delay_seconds > SQS_MAX_DELAY_SECONDS:
                raise _step_error(
                    index,
                    f"{name}.max_delay_seconds",
                    "under pattern: choreography a retry waits on SQS DelaySeconds, at most "
                    f"{SQS_MAX_DELAY_SECONDS} s; "
                    f"got {policy.max_delay_seconds}",
                )


class _LocatedError(ValueError):
    """Raised inside validators so the loader can name the step index and field."""

    def __init__(self, field: str, message: str, step_index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.step_index = step_index
        self.message = message


def _field_error(field: str, message: str) -> _LocatedError:
    return _LocatedError(field, message)


def _step_error(step_index: int, field: str, message: str) -> _LocatedError:
    return _LocatedError(field, message, step_index)


def saga_files(directory: Path = DEFINITIONS_DIR) -> list[Path]:
    return sorted(directory.glob(f"*{SAGA_FILE_SUFFIX}"))


def load_definition(path: Path) -> SagaDefinition:
    """Read and validate one saga file; every problem is reported as file, step and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SagaDefinitionError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise SagaDefinitionError(f"{path}: expected a mapping with name, description and steps")
    return parse_definition(raw, source=str(path))


def parse_definition(raw: dict[str, Any], source: str = "<definition>") -> SagaDefinition:
    try:
        return SagaDefinition.model_validate(raw)
    except ValidationError as error:
        raise SagaDefinitionError(_describe(error, raw, source)) from None


def _describe(error: ValidationError, raw: dict[str, Any], source: str) -> str:
    problems = []
    for detail in error.errors():
        location = list(detail["loc"])
        message = detail["msg"]
        context_error = (detail.get("ctx") or {}).get("error")
        step_index: int | None = None
        if isinstance(context_error, _LocatedError):
            message = context_error.message
            step_index = context_error.step_index
            location = [*location, context_error.field]
        if len(location) >= 2 and location[0] == "steps" and isinstance(location[1], int):
            step_index = location[1]
            location = location[2:]
        elif location and location[0] == "steps" and step_index is not None:
            location = location[1:]
        step_label = _step_label(raw, step_index)
        field = ".".join(str(part) for part in location) or "(saga)"
        if detail["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{source}: {step_label}field '{field}': {message}")
    return "\n".join(problems)


def _step_label(raw: dict[str, Any], step_index: int | None) -> str:
    if step_index is None:
        return ""
    steps = raw.get("steps") if isinstance(raw, dict) else None
    name = None
    if isinstance(steps, list) and step_index < len(steps) and isinstance(steps[step_index], dict):
        name = steps[step_index].get("name")
    return f"step '{name}': " if name else f"step #{step_index + 1}: "

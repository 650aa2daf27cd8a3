"""One construct per concern; the stack only composes them."""

from infra.constructs.monitoring import CommandQueue, Monitoring, StepMetrics
from infra.constructs.notifications import AlarmTopic
from infra.constructs.participant import CommandConsumer, CommandRef, Participant, ParticipantCommand
from infra.constructs.powertools_function import SharedResources
from infra.constructs.saga_operations import SagaOperations
from infra.constructs.saga_state_machine import SagaStateMachine
from infra.constructs.saga_store import IdempotencyStore, SagaStore

__all__ = [
    "AlarmTopic",
    "CommandConsumer",
    "CommandQueue",
    "CommandRef",
    "IdempotencyStore",
    "Monitoring",
    "Participant",
    "ParticipantCommand",
    "SagaOperations",
    "SagaStateMachine",
    "SagaStore",
    "SharedResources",
    "StepMetrics",
]

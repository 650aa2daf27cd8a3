"""Participant toolkit: a saga participant is two domain functions; this package does the rest."""

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import ParticipantFailure, PermanentFailure, TransientFailure
from participant_toolkit.participant import SagaParticipant
from participant_toolkit.settings import ParticipantSettings

__all__ = [
    "ParticipantFailure",
    "ParticipantSettings",
    "PermanentFailure",
    "SagaCommand",
    "SagaParticipant",
    "TransientFailure",
]

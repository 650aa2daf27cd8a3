"""Participant toolkit: a saga participant is two domain functions; this package does the rest."""

# Before anything imports pydantic: Powertools' batch utility builds its pydantic parser models (SqsRecordModel and a
# dozen more, which the toolkit never uses: it reads records through the data classes) only when pydantic is already
# imported. Importing it first takes about 30 ms off a cold start; handler modules import this package first.
import aws_lambda_powertools.utilities.batch  # noqa: F401

# isort: split
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

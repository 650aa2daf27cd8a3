"""Typed outcomes a participant's domain code raises; the toolkit maps each to one callback, in one place."""

from __future__ import annotations


class ParticipantFailure(Exception):
    """A failure reported to the saga with a Step Functions error name (e.g. `Payment.CardDeclined`)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class PermanentFailure(ParticipantFailure):
    """A business rejection or a refusal that will not change on retry: the saga compensates.

    The outcome is remembered under the command's idempotency key, so a duplicate gets the same answer.
    """


class TransientFailure(ParticipantFailure):
    """Worth retrying (a dependency throttled or was unavailable): the state machine retries per the policy."""

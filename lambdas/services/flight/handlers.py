"""FlightService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import FlightRepository
from .service import FlightService

settings = ParticipantSettings.from_env()
flights = FlightService(FlightRepository(settings.service_table_name))
participant = SagaParticipant(
    service="FlightService",
    commands={
        "HoldSeat": flights.hold_seat,
        "ReleaseSeat": flights.release_seat,
        "IssueTickets": flights.issue_tickets,  # the pivot: never compensated
    },
    settings=settings,
)

hold_seat = participant.handler("HoldSeat")
release_seat = participant.handler("ReleaseSeat")
issue_tickets = participant.handler("IssueTickets")

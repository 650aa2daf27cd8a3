"""HotelService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import HotelRepository
from .service import HotelService

settings = ParticipantSettings.from_env()
hotels = HotelService(HotelRepository(settings.service_table_name))
participant = SagaParticipant(
    service="HotelService",
    commands={
        "HoldRoom": hotels.hold_room,
        "ReleaseRoom": hotels.release_room,
    },
    settings=settings,
)

hold_room = participant.handler("HoldRoom")
release_room = participant.handler("ReleaseRoom")

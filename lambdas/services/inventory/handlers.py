"""InventoryService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import InventoryRepository
from .service import InventoryService

settings = ParticipantSettings.from_env()
inventory = InventoryService(InventoryRepository(settings.service_table_name))
participant = SagaParticipant(
    service="InventoryService",
    commands={
        "ReserveItems": inventory.reserve_items,
        "ReleaseReservation": inventory.release_reservation,
    },
    settings=settings,
)

reserve_items = participant.handler("ReserveItems")
release_reservation = participant.handler("ReleaseReservation")

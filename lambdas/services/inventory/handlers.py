"""InventoryService participant: Lambda entry points for its saga command and its compensation."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import InventoryRepository
from .service import InventoryService

settings = ParticipantSettings.from_env()
inventory = InventoryService(InventoryRepository(settings.service_table_name))
participant = SagaParticipant(
    service="InventoryService",
    action=inventory.reserve_items,
    compensation=inventory.release_reservation,
    settings=settings,
)

reserve_items = participant.action_handler
release_reservation = participant.compensation_handler

"""InventoryService participant: Lambda entry points for its saga command and its compensation."""

from inventory.repository import InventoryRepository
from inventory.service import InventoryService
from participant_toolkit import ParticipantSettings, SagaParticipant

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

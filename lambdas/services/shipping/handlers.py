"""ShippingService participant: Lambda entry points, one per command of its saga steps."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import ShippingRepository
from .service import ShippingService

settings = ParticipantSettings.from_env()
shipping = ShippingService(ShippingRepository(settings.service_table_name))
participant = SagaParticipant(
    service="ShippingService",
    commands={
        "CreateShipment": shipping.create_shipment,
        "CancelShipment": shipping.cancel_shipment,
    },
    settings=settings,
)

create_shipment = participant.handler("CreateShipment")
cancel_shipment = participant.handler("CancelShipment")

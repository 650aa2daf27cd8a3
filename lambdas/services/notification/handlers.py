"""NotificationService participant: Lambda entry points for its saga command and its compensation."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import NotificationRepository
from .service import NotificationService

settings = ParticipantSettings.from_env()
notifications = NotificationService(NotificationRepository(settings.service_table_name))
participant = SagaParticipant(
    service="NotificationService",
    action=notifications.send_order_confirmation,
    compensation=notifications.send_cancellation_notice,
    settings=settings,
)

send_order_confirmation = participant.action_handler
send_cancellation_notice = participant.compensation_handler

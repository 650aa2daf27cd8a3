"""PaymentService participant: Lambda entry points for its saga command and its compensation."""

# The toolkit first: it imports Powertools' batch utility before pydantic (see participant_toolkit/__init__.py).
from participant_toolkit import ParticipantSettings, SagaParticipant

# isort: split
from .repository import PaymentRepository
from .service import PaymentService

settings = ParticipantSettings.from_env()
payments = PaymentService(PaymentRepository(settings.service_table_name))
participant = SagaParticipant(
    service="PaymentService",
    action=payments.process_payment,
    compensation=payments.refund_payment,
    settings=settings,
)

process_payment = participant.action_handler
refund_payment = participant.compensation_handler

"""What a participant may do to the saga records: the one list the stack grants from (infra/constructs/participant.py)
and the unit tests hold the participant toolkit's calls to (tests/unit/test_saga_record_access.py).

IAM enforces both on AWS: the participant's role may call these actions only, on requests that touch these top-level
attributes only (`dynamodb:Attributes`, the table's key included, as IAM requires). A toolkit change that writes one
more attribute fails those tests before it fails in production with AccessDenied.
"""

# DynamoDB actions on the saga table a participant's code calls: the toolkit's conditional step updates, and the read
# of a saga's progress that decides whether a refused late success is undone (SagaRecordRepository.progress).
PARTICIPANT_ACTIONS = ("dynamodb:UpdateItem", "dynamodb:GetItem")

# Top-level attributes of a saga record those requests name: written (current step, step statuses, the saga status
# when a step moves it to PENDING or COMPENSATING, the update time and version) or read by their conditions.
PARTICIPANT_ATTRIBUTES = ("saga_id", "status", "current_step", "steps", "updated_at", "version")

# What that read projects (a subset of the above): never the saga's input, which holds the customer's details.
PARTICIPANT_READ_ATTRIBUTES = ("saga_id", "status", "current_step", "steps")

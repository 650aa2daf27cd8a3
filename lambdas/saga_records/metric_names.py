"""Names of the custom CloudWatch metrics (Powertools EMF), in one place for the Lambdas, the alarms and the dashboard.

Every metric lands in the stack's Powertools namespace (infra.constants.POWERTOOLS_METRICS_NAMESPACE) with the
Powertools `service` dimension.
"""

# --- participant toolkit, per step: dimensions service, step, kind (action | compensation) ---
STEP_DIMENSIONS = ("service", "step", "kind")
STEP_DURATION = "StepDuration"  # milliseconds the domain function took
STEP_SUCCEEDED = "StepSucceeded"  # the step's command took effect (kind=compensation: a compensation ran)
STEP_FAILED = "StepFailed"  # the command was rejected or failed transiently (kind=compensation: a compensation failed)

# --- participant toolkit, per batch: dimension service only ---
# Records of a batch handed back to SQS for redelivery (a duplicate delivery waiting for its twin left out): Lambda's
# Errors metric only counts a batch that failed whole.
BATCH_RECORDS_FAILED = "BatchRecordsFailed"
# Commands deleted unrun: their task ended (timed out, or answered by another copy) while they waited in the queue.
STALE_COMMANDS_SHED = "StaleCommandsShed"

# --- the saga API's admission control: dimension saga_type, and reason for a refusal ---
ADMISSION_DIMENSIONS = ("saga_type",)
STARTS_ADMITTED = "SagaStartsAdmitted"  # starts that passed admission (then written and started)
STARTS_REFUSED = "SagaStartsRefused"  # starts answered 429; extra dimension `reason`: rate | backlog
REFUSAL_REASONS = ("rate", "backlog")

# --- saga operations (detector): dimension service only ---
OPERATIONS_SERVICE = "SagaOperations"  # POWERTOOLS_SERVICE_NAME of the detector and the reconciler
STUCK_SAGAS = "StuckSagas"  # gauge: sagas past their deadline or parked, at each detector run
STUCK_SAGAS_REPORTED = "StuckSagasReported"  # new incidents sent to the stuck-sagas queue
SAGAS_IN_STATUS = "SagasInStatus"  # gauge per non-terminal status; extra dimension `status`
EXECUTIONS_RECONCILED = "ExecutionsReconciled"  # records the execution-status reconciler brought to the truth

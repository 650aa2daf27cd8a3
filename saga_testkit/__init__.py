"""The proving harness: sagas run on the local runtime and checked there.

The demo, the random-fault soak, the fault matrix and its fault injection, `make deploy-local`, `make serve-api`, and
what they share (`LocalSagas`, saga outcomes, reconciliation). It drives the local runtime (`local_runtime/`, AWS
emulated in this process), which never imports it. An example saga's own data (sample inputs, scenarios, its
invariant check) lives beside that saga's tests, in `tests/sagas/<saga>/`.
"""

import local_runtime  # noqa: F401 - puts the Lambda code root (participant_toolkit, services) on the import path

"""The proving harness: sagas of any type run on the local runtime and checked there.

The demo, the random-fault soak, the fault matrix and its fault injection, `make deploy-local`, `make serve-api`, the
pytest plugin, and what they share (`LocalSagas`, saga outcomes, saga kits and their invariant checks). It drives the
local runtime (`local_runtime/`, AWS emulated in this process), which never imports it. A saga's own data (sample
inputs, scenarios, its invariant check) is its kit, found by convention beside its tests: `tests/sagas/<snake>/kit.py`.
"""

import local_runtime  # noqa: F401 - puts the Lambda code root (participant_toolkit, services) on the import path

"""The local runtime's process-wide Powertools objects: set up for the stack whoever imported them first."""

from __future__ import annotations

import importlib
import io
import logging

import pytest

from local_runtime.cloud import SHARED_OBSERVABILITY_MODULES, _share_lambda_observability

pytestmark = pytest.mark.unit


@pytest.fixture
def shared_modules():
    """Every shared observability module, imported, its namespace and log streams restored afterwards."""
    modules = [importlib.import_module(name) for name in SHARED_OBSERVABILITY_MODULES]
    saved = [
        (module, module.metrics.namespace, [(h, h.stream) for h in module.logger.handlers if hasattr(h, "stream")])
        for module in modules
    ]
    yield modules
    for module, namespace, streams in saved:
        module.metrics.namespace = namespace
        for handler, stream in streams:
            handler.setStream(stream)


def test_a_shared_module_imported_outside_any_function_gets_the_stacks_namespace_and_lambda_log(shared_modules):
    # Given the shared modules as a first import with no function environment leaves them: no metric namespace
    for module in shared_modules:
        module.metrics.namespace = None
    lambda_log = io.StringIO()
    # When a cloud shares them with its functions
    _share_lambda_observability({"POWERTOOLS_METRICS_NAMESPACE": "Sagas"}, lambda_log)
    # Then each can publish metrics under the stack's namespace, and logs to the Lambda log
    for module in shared_modules:
        assert module.metrics.namespace == "Sagas", module.__name__
        streams = [h.stream for h in module.logger.handlers if isinstance(h, logging.StreamHandler)]
        assert streams, module.__name__
        assert all(stream is lambda_log for stream in streams), module.__name__

"""The cold-init bench measures the import path a Lambda function takes, not a developer machine's."""

from __future__ import annotations

import itertools

import pytest

from bench.cold_init import BASELINE, import_layers, service_name, time_in_fresh_process

pytestmark = pytest.mark.unit


def participant_environment(service: str) -> dict[str, str]:
    """What a participant function's settings need, for importing its handler module outside the template."""
    return {
        "SERVICE_TABLE_NAME": f"{service}-table",
        "SAGA_TABLE_NAME": "sagas",
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
        "POWERTOOLS_SERVICE_NAME": service,
    }


def test_the_x_ray_recorder_takes_its_lambda_path_in_the_bench_environment():
    # Given the bench's fresh-process environment / When the X-Ray SDK is imported there
    body = (
        "import aws_xray_sdk.core as xray\n"
        "assert type(xray.xray_recorder.sampler).__name__ == 'LocalSampler', type(xray.xray_recorder.sampler)"
    )
    # Then its recorder samples locally, as in Lambda (outside Lambda it would build X-Ray clients at import)
    assert time_in_fresh_process(body) > 0


def test_the_layers_build_up_from_the_baseline_to_the_handler_one_layer_at_a_time():
    # Given a handler module / When its import is split into layers
    layers = import_layers("services.inventory.handlers")
    # Then they start at the baseline and end importing the handler, each body the one before plus its layer
    bodies = [body for _, body in layers]
    assert bodies[0] == BASELINE
    assert bodies[-1].endswith("import services.inventory.handlers")
    for before, after in itertools.pairwise(bodies):
        assert after.startswith(before + "\n")
        assert after != before + "\n"
    # And every layer runs in a Lambda-like process (an import error would fail here)
    assert time_in_fresh_process(bodies[-2]) > 0


@pytest.mark.parametrize("service", ["inventory", "notification", "payment", "shipping"])
def test_a_participant_handler_cold_start_builds_no_powertools_parser_model(service):
    # Given a participant handler module, in a fresh Lambda-like process with its function's settings
    # When it is imported / Then Powertools' parser models (unused: records are read through the data classes) are
    # not, which they would be if pydantic were imported before Powertools' batch utility
    body = (
        f"import services.{service}.handlers\n"
        "import sys\n"
        "assert 'aws_lambda_powertools.utilities.parser.models' not in sys.modules, 'parser models imported'"
    )
    assert time_in_fresh_process(body, participant_environment(service)) > 0


def test_a_participant_traces_its_boto3_calls_without_importing_other_libraries_x_ray_could_patch():
    # Given a participant handler imported in a fresh Lambda-like process, tracing on
    body = (
        "import services.inventory.handlers\n"
        "import sys\n"
        "import botocore.client\n"
        # Then its boto3 calls go through X-Ray's wrapper
        "assert type(botocore.client.BaseClient._make_api_call).__name__ == 'BoundFunctionWrapper'\n"
        # And libraries it never calls were not imported to be patched
        "unneeded = {'requests', 'httpx', 'sqlite3'} & set(sys.modules)\n"
        "assert not unneeded, unneeded"
    )
    assert time_in_fresh_process(body, participant_environment("inventory")) > 0


def test_each_participant_handler_is_named_after_its_service():
    # Given the handler modules of the four services / When the figures name them / Then each by its own service
    modules = [f"services.{service}.handlers" for service in ("inventory", "notification", "payment", "shipping")]
    assert [service_name(module) for module in modules] == ["inventory", "notification", "payment", "shipping"]
    # And a handler module at the top of the code root by its package
    assert service_name("inventory.handlers") == "inventory"

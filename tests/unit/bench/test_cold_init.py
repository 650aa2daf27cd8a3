"""The cold-init bench measures the import path a Lambda function takes, not a developer machine's."""

from __future__ import annotations

import pytest

from bench.cold_init import time_in_fresh_process

pytestmark = pytest.mark.unit


def test_the_x_ray_recorder_takes_its_lambda_path_in_the_bench_environment():
    # Given the bench's fresh-process environment / When the X-Ray SDK is imported there
    body = (
        "import aws_xray_sdk.core as xray\n"
        "assert type(xray.xray_recorder.sampler).__name__ == 'LocalSampler', type(xray.xray_recorder.sampler)"
    )
    # Then its recorder samples locally, as in Lambda (outside Lambda it would build X-Ray clients at import)
    assert time_in_fresh_process(body) > 0

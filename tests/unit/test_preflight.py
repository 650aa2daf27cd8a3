"""`make deploy`'s preflight: the Powertools layer parameter the stack resolves must exist in the target region.

moto's SSM plays the region: AWS owns /aws/service/... parameters (PutParameter refuses them, on moto too), so the
tests seed moto's store the way AWS publishes them.
"""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws
from moto.ssm.models import Parameter, ssm_backends

from infra import constants, preflight

pytestmark = pytest.mark.unit

ACCOUNT, REGION = "123456789012", "eu-central-1"
LAYER_ARN = f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:20"


def publish(name: str, value: str) -> None:
    ssm_backends[ACCOUNT][REGION]._parameters[name].append(
        Parameter(
            account_id=ACCOUNT,
            name=name,
            value=value,
            parameter_type="String",
            description="AWS public parameter",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=time.time(),
            version=1,
            data_type="text",
        )
    )


@pytest.fixture
def region(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_REGION", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def test_the_deploy_goes_ahead_when_the_layer_is_published(region, capsys):
    # Given AWS publishes the layer for this runtime, architecture and version in the region
    publish(constants.POWERTOOLS_LAYER_PARAMETER, LAYER_ARN)
    # When the preflight runs / Then it passes and names the layer
    assert preflight.main(region) == 0
    assert LAYER_ARN in capsys.readouterr().out


def test_a_missing_layer_stops_the_deploy_naming_what_is_published(region, capsys):
    # Given the region has other versions for this runtime, but not the one the stack pins
    base = constants.POWERTOOLS_LAYER_PARAMETER.rsplit("/", 1)[0]
    for version in ("3.9.0", "3.10.0", "3.2.1"):
        publish(f"{base}/{version}", LAYER_ARN)
    # When the preflight runs
    assert preflight.main(region) == 1
    # Then it says which parameter, runtime, architecture and region, and which versions exist, newest last
    error = capsys.readouterr().err
    assert constants.POWERTOOLS_LAYER_PARAMETER in error
    assert f"Powertools {constants.POWERTOOLS_VERSION} has no layer for {constants.LAMBDA_RUNTIME}" in error
    assert REGION in error
    assert "3.2.1, 3.9.0, 3.10.0" in error


def test_a_region_without_any_layer_for_the_runtime_says_so(region):
    with pytest.raises(
        preflight.PreflightError, match=f"no Powertools layer is published there for {constants.LAMBDA_RUNTIME}"
    ):
        preflight.powertools_layer_arn(region.client("ssm"), REGION)


def test_no_region_is_an_error_before_anything_is_asked(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert preflight.main(boto3.session.Session()) == 1
    assert "no AWS region" in capsys.readouterr().err


def test_make_deploy_runs_the_preflight_before_cdk_deploy():
    makefile = (constants.REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("-m infra.preflight") < recipe.index("$(CDK) deploy")

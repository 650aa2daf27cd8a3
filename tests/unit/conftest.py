"""Unit-test fixtures: moto started before any client is created."""

import pytest
from moto import mock_aws

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def moto_sfn(aws_env):
    """moto with Step Functions executing definitions (the local runtime's configuration)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def moto_cloudformation(aws_env):
    """moto for the CloudFormation change-set path the CDK CLI takes (tests/unit/test_cfn_server_workarounds.py)."""
    with mock_aws():
        yield

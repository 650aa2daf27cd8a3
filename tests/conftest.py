"""Shared test setup: Lambda code is importable the way the Lambda runtime sees it (lambdas/ on sys.path), and the
saga test kit's fixtures (saga_testkit/pytest_plugin.py) are registered."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAMBDAS = REPO / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))

pytest_plugins = ["saga_testkit.pytest_plugin"]

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials and a region for moto, so no client reaches a real account."""
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup` (on a worker), xdist has tagged each grouped test's node id with its group by now. An
    untagged test runs on any worker, and its group's shared local cloud is deployed once per worker: pytest 9.2
    made the tag a silent no-op. Fail loudly instead."""
    if not getattr(config.option, "loadgroup", False):
        return
    untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if untagged:
        raise pytest.UsageError(f"pytest-xdist did not tag {len(untagged)} xdist_group test(s), e.g. {untagged[0]}")

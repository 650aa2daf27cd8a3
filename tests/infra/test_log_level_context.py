"""The `logLevel` context value (`cdk deploy -c logLevel=DEBUG`) that sets every function's LOG_LEVEL.

That a deploy with it changes the deployed functions is checked end to end by tests/e2e/test_deploy_local.py.
"""

from __future__ import annotations

import pytest

from infra import constants
from infra.constructs.powertools_function import function_log_level

pytestmark = pytest.mark.infra


def test_without_the_context_value_functions_log_at_the_default_level():
    assert function_log_level(None) == constants.LOG_LEVEL


@pytest.mark.parametrize(("requested", "expected"), [("DEBUG", "DEBUG"), ("warning", "WARNING")])
def test_a_known_level_is_used_whatever_its_case(requested, expected):
    assert function_log_level(requested) == expected


def test_an_unknown_level_fails_synth_naming_the_context_key_and_the_choices():
    # Given a typo on the command line / When the app reads it / Then the error says which value and what is allowed
    with pytest.raises(ValueError, match=r"context 'logLevel': 'VERBOSE' is not one of DEBUG, INFO, WARNING, ERROR"):
        function_log_level("VERBOSE")

"""The local runtime's EventBridge: schedule expressions on the local clock."""

from __future__ import annotations

import pytest

from local_runtime.eventbridge import rate_seconds

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_in_seconds(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_a_cron_schedule_is_refused_by_name():
    with pytest.raises(ValueError, match="ScheduleExpression"):
        rate_seconds("cron(0 12 * * ? *)")

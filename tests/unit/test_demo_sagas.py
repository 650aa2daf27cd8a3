"""Which sagas `make demo` runs: every saga of the project, or those `SAGA=` names (`--saga`), refused by name."""

from __future__ import annotations

import pytest

from saga_testkit.demo import UnknownSaga, demo_definitions, main
from saga_testkit.kit import project_definitions

pytestmark = pytest.mark.unit


def test_every_saga_of_the_project_runs_when_none_is_named():
    # When no saga is named / Then every definition of statemachines/sagas/ runs, the examples among them
    names = [definition.name for definition in demo_definitions(None)]
    assert names == [definition.name for definition in project_definitions()]
    assert {"OrderFulfillment", "TripBooking"} <= set(names)


@pytest.mark.parametrize("name", ["OrderFulfillment", "TripBooking"])
def test_a_named_saga_runs_alone(name):
    assert [definition.name for definition in demo_definitions([name])] == [name]


def test_an_unknown_saga_is_refused_naming_it_and_the_project_s_sagas():
    with pytest.raises(UnknownSaga, match=r"no saga TripBookng in statemachines/sagas/; the project has .*TripBooking"):
        demo_definitions(["TripBooking", "TripBookng"])


def test_the_demo_exits_2_for_an_unknown_saga_before_synthesizing_anything(capsys):
    # When the demo is asked for a saga the project does not define / Then it says so and exits 2 at once
    assert main(["--saga", "Nope"]) == 2
    assert "no saga Nope" in capsys.readouterr().out

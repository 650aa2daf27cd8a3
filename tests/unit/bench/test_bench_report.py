"""docs/benchmarks.md is the rendering of bench/results.json: a figure on the page always comes from a run."""

from __future__ import annotations

import json

import pytest

from bench import report
from bench.figures import RESULTS_FILE

pytestmark = pytest.mark.unit


def test_the_committed_benchmark_page_is_the_rendering_of_the_committed_results():
    results = json.loads(RESULTS_FILE.read_text(encoding="utf-8"))
    assert report.PAGE.read_text(encoding="utf-8") == report.render(results), (
        "docs/benchmarks.md is stale: run `python -m bench.report` (make bench does)"
    )


def test_a_changed_figure_changes_the_page():
    results = json.loads(RESULTS_FILE.read_text(encoding="utf-8"))
    changed = {**results, "transitions_happy": results["transitions_happy"] + 1}
    assert report.render(changed) != report.render(results)
    assert f"| billed transitions, happy path | {results['transitions_happy'] + 1} |" in report.render(changed)

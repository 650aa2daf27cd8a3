"""The benchmark's results writer and arithmetic (no timing here: figures are given, derivations checked)."""

from __future__ import annotations

import json

import pytest

from bench.figures import REQUIRED_KEYS, median, ratio, results, sagas_per_second, usd_per_million_sagas, write_results

pytestmark = pytest.mark.unit


def _document(**overrides):
    figures = {
        "throughput": 12.0,
        "baseline_throughput": 16.0,
        "transitions_happy": 5,
        "transitions_failed_at_step": [2, 4, 6, 8],
        "cold_init_ratios": {"inventory": 1.2, "payment": 1.8},
        "synth_s": 7.25,
        "test_suite_s": 190.0,
    }
    return results(**(figures | overrides))


def test_cost_per_million_sagas_is_transitions_times_the_price_per_transition():
    # Given $0.025 per 1,000 transitions: a million sagas of 5 transitions are 5,000,000 transitions
    # When / Then it costs 5,000 x $0.025
    assert usd_per_million_sagas(5) == pytest.approx(125.0)
    assert usd_per_million_sagas(0) == 0


def test_ratio_and_rate_refuse_a_zero_denominator():
    # Given / When / Then 12 over 16 is 0.75, and nothing is divided by zero
    assert ratio(12, 16) == pytest.approx(0.75)
    assert sagas_per_second(200, 40.0) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="baseline"):
        ratio(1, 0)
    with pytest.raises(ValueError, match="wall time"):
        sagas_per_second(200, 0)


def test_median_of_odd_and_even_counts():
    # Given repetitions in any order / When the median is taken / Then the middle one (or the mean of the two)
    assert median([0.3, 0.1, 0.2]) == pytest.approx(0.2)
    assert median([0.4, 0.1, 0.2, 0.3]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_results_derive_ratio_cost_and_worst_cold_init():
    # Given measured figures / When the results document is built
    document = _document()
    # Then it carries every key issue 5 asks for, with the derived ones computed from the inputs
    assert set(REQUIRED_KEYS) <= set(document)
    assert document["throughput_ratio"] == pytest.approx(12.0 / 16.0)
    assert document["usd_per_million_happy"] == pytest.approx(5 * 1000 * 0.025)
    assert document["cold_init_ratio_max"] == pytest.approx(1.8)
    assert document["transitions_failed_at_step"] == [2, 4, 6, 8]
    assert document["test_suite_measured"] is True


def test_a_skipped_suite_is_recorded_as_not_measured():
    # Given a run with --skip-suite / When the document is built / Then the figure is null and says why
    document = _document(test_suite_s=None)
    assert document["test_suite_s"] is None
    assert document["test_suite_measured"] is False


def test_writer_refuses_a_document_missing_a_required_key(tmp_path):
    # Given a document without the throughput ratio
    document = _document()
    del document["throughput_ratio"]
    target = tmp_path / "results.json"
    # When it is written / Then it is refused, naming the key, and no file appears
    with pytest.raises(ValueError, match="throughput_ratio"):
        write_results(document, target)
    assert not target.exists()


def test_writer_writes_json_with_the_required_keys(tmp_path):
    # Given a complete document / When written / Then the file reads back to the same figures
    target = write_results(_document(), tmp_path / "results.json")
    assert json.loads(target.read_text())["transitions_happy"] == 5

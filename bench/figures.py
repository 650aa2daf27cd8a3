"""The benchmark's arithmetic and its results file: pure functions, no measuring here (unit-tested)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_FILE = Path(__file__).resolve().parent / "results.json"
USD_PER_1000_TRANSITIONS = 0.025  # Step Functions Standard, most regions (aws.amazon.com/step-functions/pricing)
# The keys issue 5 asks of bench/results.json; extra keys may follow them.
REQUIRED_KEYS = (
    "throughput_sagas_per_s",
    "baseline_throughput_sagas_per_s",
    "throughput_ratio",
    "transitions_happy",
    "transitions_failed_at_step",
    "usd_per_million_happy",
    "cold_init_ratio_max",
    "synth_s",
    "test_suite_s",
)


def usd_per_million_sagas(transitions_per_saga: int) -> float:
    """Step Functions cost of a million sagas that each take `transitions_per_saga` billed transitions."""
    return transitions_per_saga * 1_000_000 / 1000 * USD_PER_1000_TRANSITIONS


def ratio(measured: float, baseline: float) -> float:
    """`measured / baseline`; a zero baseline has no meaningful ratio."""
    if baseline <= 0:
        raise ValueError(f"baseline must be positive to form a ratio, got {baseline}")
    return measured / baseline


def sagas_per_second(sagas: int, wall_seconds: float) -> float:
    if wall_seconds <= 0:
        raise ValueError(f"wall time must be positive, got {wall_seconds}")
    return sagas / wall_seconds


def median(values: list[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def results(
    *,
    throughput: float,
    baseline_throughput: float,
    transitions_happy: int,
    transitions_failed_at_step: list[int],
    cold_init_ratios: dict[str, float],
    synth_s: float,
    test_suite_s: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results document: the required keys first (derived figures computed here), then `extra`.

    `test_suite_s` is None when the run skipped the suite (`--skip-suite`); `test_suite_measured` says so.
    """
    if not cold_init_ratios:
        raise ValueError("cold_init_ratios: no participant handler was measured")
    document: dict[str, Any] = {
        "throughput_sagas_per_s": round(throughput, 2),
        "baseline_throughput_sagas_per_s": round(baseline_throughput, 2),
        "throughput_ratio": round(ratio(throughput, baseline_throughput), 3),
        "transitions_happy": transitions_happy,
        "transitions_failed_at_step": list(transitions_failed_at_step),
        "usd_per_million_happy": round(usd_per_million_sagas(transitions_happy), 2),
        "cold_init_ratio_max": round(max(cold_init_ratios.values()), 3),
        "synth_s": round(synth_s, 2),
        "test_suite_s": None if test_suite_s is None else round(test_suite_s, 1),
        "test_suite_measured": test_suite_s is not None,
        "cold_init_ratio_by_handler": {name: round(value, 3) for name, value in sorted(cold_init_ratios.items())},
    }
    for key, value in (extra or {}).items():
        document.setdefault(key, value)
    return document


def write_results(document: dict[str, Any], path: Path = RESULTS_FILE) -> Path:
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise ValueError(f"results lack the required keys: {', '.join(missing)}")
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path

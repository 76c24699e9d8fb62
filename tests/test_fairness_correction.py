"""Correcting generated faces' demographics for the classifier's errors: exact on noise-free inputs, unbiased with
honest intervals on simulated classifiers, never outside the simplex, and a sample-size calculation that shows why
1,000 random requests were too few."""

from __future__ import annotations

import numpy as np
import pytest

from facegen.attributes import AGE_BINS, ETHNICITIES
from facegen.metrics.fairness import fairness_report, fairness_violations, FairnessThresholds
from facegen.metrics.fairness_correction import (
    correct_attribute,
    corrected_shares,
    error_rates,
    perfect_generator_pass_rate,
)

#: Noise-free inversion recovers the true shares to float rounding.
EXACT_TOLERANCE = 1e-6
#: A 9-group attribute read by a classifier with ~50 % accuracy, errors mostly to the neighbouring bins (like age).
HELD_OUT_PER_GROUP = 250


def _neighbour_confusion(k: int, rng: np.random.Generator, per_group: int = HELD_OUT_PER_GROUP) -> np.ndarray:
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    rates = np.exp(-1.2 * distance) * np.where(distance == 0, 1.5, 1.0)
    rates /= rates.sum(axis=1, keepdims=True)
    return np.stack([rng.multinomial(per_group, row) for row in rates])


def test_noise_free_observations_are_inverted_exactly() -> None:
    rng = np.random.default_rng(0)
    rates = error_rates(_neighbour_confusion(9, rng), AGE_BINS)
    truth = rng.dirichlet(np.ones(9))
    assert np.allclose(corrected_shares(rates.T @ truth, rates), truth, atol=EXACT_TOLERANCE)


def test_noisy_observations_stay_on_the_simplex() -> None:
    rates = error_rates(np.array([[90, 10], [20, 80]]), ["female", "male"])
    shares = corrected_shares(np.array([0.05, 0.95]), rates)  # plain inversion would give a negative female share
    assert shares.min() >= 0 and shares.sum() == pytest.approx(1.0) and shares[0] == pytest.approx(0.0, abs=1e-9)


def test_correction_recovers_the_truth_that_raw_shares_miss() -> None:
    """A generator drawing a skewed age mix, read by an erring classifier: raw shares are pulled toward the
    classifier's errors, corrected shares land on the truth and the 95 % intervals cover it."""
    rng = np.random.default_rng(1)
    counts = _neighbour_confusion(9, rng)
    truth = np.array([0.02, 0.05, 0.08, 0.30, 0.20, 0.12, 0.10, 0.08, 0.05])
    true_group = rng.choice(9, size=20_000, p=truth)
    rates = counts / counts.sum(axis=1, keepdims=True)
    predicted = np.array([rng.choice(9, p=rates[t]) for t in true_group])
    result = correct_attribute(np.asarray(AGE_BINS, dtype=object)[predicted], AGE_BINS, counts,
                               {b: 1 / 9 for b in AGE_BINS}, bootstrap=300, seed=2)  # fmt: skip
    raw_error = np.abs(result.raw - truth).max()
    corrected_error = np.abs(result.corrected - truth).max()
    assert corrected_error < raw_error / 3, (raw_error, corrected_error)
    low, high = result.corrected_ci.T
    assert np.all((low <= truth) & (truth <= high))
    assert result.tv_ci[0] <= result.tv <= result.tv_ci[1]


def test_a_group_without_held_out_faces_cannot_be_corrected() -> None:
    with pytest.raises(ValueError, match="no faces of \\['male'\\]"):
        error_rates(np.array([[5, 1], [0, 0]]), ["female", "male"])


def test_gates_read_corrected_shares_and_report_both() -> None:
    """An on-target generator whose faces the classifier reads as 70 % White passes on corrected shares only."""
    rng = np.random.default_rng(3)
    k = len(ETHNICITIES)
    rates = np.full((k, k), 0.05) + np.eye(k) * 0.55
    rates[:, 0] += 0.2  # everyone drifts toward "White"
    rates /= rates.sum(axis=1, keepdims=True)
    counts = np.stack([rng.multinomial(4000, row) for row in rates])
    requested = np.repeat(np.asarray(ETHNICITIES, dtype=object), 2000)
    predicted = np.array([ETHNICITIES[rng.choice(k, p=rates[ETHNICITIES.index(r)])] for r in requested], dtype=object)
    target = {"ethnicity": {e: 1 / k for e in ETHNICITIES}}
    report = fairness_report({"ethnicity": predicted}, target, requested={"ethnicity": requested},
                             confusions={"ethnicity": counts}, bootstrap=200)  # fmt: skip
    generated = report["ethnicity"]["generated"]
    assert generated["tv_raw"] > 0.15 and generated["tv"] < 0.03
    assert report["ethnicity"]["classifier_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    assert fairness_violations(report, FairnessThresholds(max_tv={"ethnicity": 0.10})) == []
    uncorrected = fairness_report({"ethnicity": predicted}, target)
    assert fairness_violations(uncorrected, FairnessThresholds(max_tv={"ethnicity": 0.10}))


def test_sample_size_calculation() -> None:
    """With an age-like classifier, 1,000 requests fail a perfect generator most of the time; 20,000 almost never
    (classification noise only). Redrawing the held-out set too shows the part more faces cannot remove."""
    counts = _neighbour_confusion(9, np.random.default_rng(4))
    target = {b: 1 / 9 for b in AGE_BINS}
    rate = lambda n, noise=False: perfect_generator_pass_rate(  # noqa: E731
        counts, AGE_BINS, target, n, max_tv=0.10, min_ratio=0.8, draws=100, calibration_noise=noise, seed=5)
    assert rate(1_000) < 0.5
    assert rate(20_000) >= 0.95
    assert rate(20_000, noise=True) < rate(20_000)

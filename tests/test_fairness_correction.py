"""Correcting generated faces' demographics for the classifier's errors: exact on noise-free inputs, unbiased with
honest intervals on simulated classifiers, never outside the simplex, and a sample-size calculation that shows why
1,000 requests were too few."""

from __future__ import annotations

import numpy as np
import pytest

from facegen.attributes import AGE_BINS, ETHNICITIES
from facegen.gates import FairnessThresholds, fairness_violations
from facegen.metrics.fairness import fairness_report
from facegen.metrics.fairness_correction import (
    HeldOut,
    correct_attribute,
    corrected_shares,
    mean_probabilities,
    perfect_generator_pass_rate,
)

#: Noise-free inversion recovers the true shares to float rounding.
EXACT_TOLERANCE = 1e-6
#: Held-out faces per group of the simulated classifiers (UTKFace's held-out split has 100-700 per age bin).
HELD_OUT_PER_GROUP = 250
UNIFORM_AGE = {b: 1 / len(AGE_BINS) for b in AGE_BINS}


class SimulatedClassifier:
    """Reads a face of true group t as group j ~ row t of an error matrix (neighbouring groups confused, like age
    bins), with softmax-like probabilities peaked on j: as noisy per face as a real classifier's readings."""

    def __init__(self, k: int, seed: int, drift_to_first: float = 0.0) -> None:
        distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
        rates = np.exp(-1.2 * distance) * np.where(distance == 0, 1.5, 1.0)
        rates[:, 0] += drift_to_first
        self.rates = rates / rates.sum(axis=1, keepdims=True)
        self.rng = np.random.default_rng(seed)

    def read(self, truth: np.ndarray) -> np.ndarray:
        k = len(self.rates)
        seen = [self.rng.choice(k, p=self.rates[t]) for t in truth]
        return np.stack([self.rng.dirichlet(0.5 + 6 * np.eye(k)[j] + self.rates[t]) for t, j in zip(truth, seen)])

    def held_out(self, per_group: int = HELD_OUT_PER_GROUP) -> HeldOut:
        truth = np.repeat(np.arange(len(self.rates)), per_group)
        return HeldOut(truth, self.read(truth))


def test_noise_free_observations_are_inverted_exactly() -> None:
    held_out = SimulatedClassifier(9, seed=0).held_out()
    rates = mean_probabilities(held_out, held_out.by_group(AGE_BINS))
    truth = np.random.default_rng(1).dirichlet(np.ones(9))
    assert np.allclose(corrected_shares(rates.T @ truth, rates), truth, atol=EXACT_TOLERANCE)


def test_noisy_observations_stay_on_the_simplex() -> None:
    rates = np.array([[0.9, 0.1], [0.2, 0.8]])
    shares = corrected_shares(np.array([0.05, 0.95]), rates)  # plain inversion would give a negative female share
    assert shares.min() >= 0 and shares.sum() == pytest.approx(1.0) and shares[0] == pytest.approx(0.0, abs=1e-9)


def test_correction_recovers_the_truth_that_raw_shares_miss() -> None:
    """A generator drawing a skewed age mix, read by an erring classifier: the mean readings are pulled toward the
    classifier's errors, corrected shares land on the truth and the 95 % intervals cover it."""
    classifier = SimulatedClassifier(9, seed=2)
    truth = np.array([0.02, 0.05, 0.08, 0.30, 0.20, 0.12, 0.10, 0.08, 0.05])
    readings = classifier.read(np.random.default_rng(3).choice(9, size=20_000, p=truth))
    result = correct_attribute(readings, AGE_BINS, classifier.held_out(), UNIFORM_AGE, bootstrap=300, seed=4)
    raw_error = np.abs(readings.mean(axis=0) - truth).max()
    corrected_error = np.abs(result.corrected - truth).max()
    assert corrected_error < raw_error / 3, (raw_error, corrected_error)
    low, high = result.corrected_ci.T
    assert np.all((low <= truth) & (truth <= high))
    assert result.tv_ci[0] <= result.tv <= result.tv_ci[1]


def test_a_group_without_held_out_faces_cannot_be_corrected() -> None:
    held_out = HeldOut(np.array([0, 0, 0]), np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]]))
    with pytest.raises(ValueError, match="no faces of \\['male'\\]"):
        correct_attribute(np.array([[0.5, 0.5]]), ["female", "male"], held_out, {"female": 0.5, "male": 0.5})


def test_gates_read_corrected_shares_and_report_both() -> None:
    """An on-target generator whose faces the classifier reads as White-heavy passes on corrected shares only."""
    classifier = SimulatedClassifier(len(ETHNICITIES), seed=5, drift_to_first=2.0)
    requested_index = np.repeat(np.arange(len(ETHNICITIES)), 2000)
    readings = classifier.read(requested_index)
    target = {"ethnicity": {e: 1 / len(ETHNICITIES) for e in ETHNICITIES}}
    requested = {"ethnicity": np.asarray(ETHNICITIES, dtype=object)[requested_index]}
    held_out = {"ethnicity": classifier.held_out(per_group=2000)}
    report = fairness_report({"ethnicity": readings}, target, requested=requested, held_out=held_out, bootstrap=100)
    generated = report["ethnicity"]["generated"]
    assert generated["tv_raw"] > 0.15 and generated["tv"] < 0.03
    confusion = held_out["ethnicity"].confusion
    assert report["ethnicity"]["classifier_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert fairness_violations(report, FairnessThresholds(max_tv={"ethnicity": 0.10})) == []
    uncorrected = fairness_report({"ethnicity": readings}, target)
    assert fairness_violations(uncorrected, FairnessThresholds(max_tv={"ethnicity": 0.10}))


def test_sample_size_calculation() -> None:
    """With an age-like classifier, 1,000 requests fail a perfect generator most of the time and 20,000 almost
    never (the faces' noise only); redrawing the held-out set too shows the part more faces cannot remove."""
    held_out = SimulatedClassifier(9, seed=6).held_out()
    rate = lambda n, noise=False: perfect_generator_pass_rate(  # noqa: E731
        held_out, AGE_BINS, UNIFORM_AGE, n, max_tv=0.10, min_ratio=0.8, draws=100, calibration_noise=noise, seed=7
    )
    assert rate(1_000) < 0.5
    assert rate(20_000) >= 0.95
    assert rate(20_000, noise=True) < rate(20_000)

"""Fairness of generated faces: shares, TV distance and representation ratio on known inputs (the gate lines on
them: tests/test_gates.py), the tags, requested labels for conditional generators, and the chart; generation latency on a generator of known speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from facegen.attributes import AGE_BINS, ETHNICITIES, GENDERS
from facegen.metrics.fairness import (
    fairness_metrics,
    fairness_report,
    fairness_tags,
    group_shares,
    plot_fairness,
    representation_ratio,
    stratified_requests,
    total_variation,
)
from facegen.metrics.latency import generation_latency
from facegen.models.registry import build_generator

UNIFORM_GENDER = {"female": 0.5, "male": 0.5}


def test_shares_tv_and_ratio_on_known_labels() -> None:
    shares = group_shares(["male", "male", "female", "male"], ("female", "male"))
    assert shares == {"female": 0.25, "male": 0.75}
    assert total_variation(shares, UNIFORM_GENDER) == pytest.approx(0.25)
    # uniform target: the plain min/max group-share ratio
    assert representation_ratio(shares, UNIFORM_GENDER) == pytest.approx(0.25 / 0.75)
    # a non-uniform target: equal shares are off by 0.2 and the ratio is relative to what was intended
    target = {"female": 0.7, "male": 0.3}
    assert total_variation({"female": 0.5, "male": 0.5}, target) == pytest.approx(0.2)
    assert representation_ratio({"female": 0.5, "male": 0.5}, target) == pytest.approx((0.5 / 0.7) / (0.5 / 0.3))
    # a group the generator never draws
    assert representation_ratio({"female": 1.0, "male": 0.0}, UNIFORM_GENDER) == 0.0
    assert group_shares(["Black"] * 3, ETHNICITIES)["White"] == 0.0


def one_hot(names: list[str], groups: tuple[str, ...]) -> np.ndarray:
    """A classifier that is certain of each face's group: probabilities 1 on the named group."""
    return np.eye(len(groups))[[groups.index(n) for n in names]]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not in the vocabulary"):
        group_shares(["female", "robot"], ("female", "male"))
    with pytest.raises(ValueError, match="empty"):
        group_shares([], ("female", "male"))
    with pytest.raises(ValueError, match="summing to 1"):
        total_variation({"female": 0.5, "male": 0.2}, UNIFORM_GENDER)
    with pytest.raises(ValueError, match="requested labels"):
        fairness_report({"gender": one_hot(["male"] * 4, GENDERS)}, {}, requested={"gender": np.array(["male"])})
    with pytest.raises(ValueError, match="probabilities"):
        fairness_report({"gender": np.array(["male"] * 4)}, {})


def test_report_tags_and_metrics() -> None:
    predicted = {
        "gender": one_hot(["female"] * 48 + ["male"] * 52, GENDERS),
        "age_bin": one_hot(["20-29"] * 100, AGE_BINS),
    }
    real = {"gender": one_hot(["female"] * 50 + ["male"] * 50, GENDERS)}
    targets = {"gender": UNIFORM_GENDER, "age_bin": {b: 1 / len(AGE_BINS) for b in AGE_BINS}}
    requested = {"gender": np.array(["female"] * 50 + ["male"] * 50, dtype=object)}
    report = fairness_report(predicted, targets, reference=real, requested=requested)

    assert report["gender"]["generated"]["tv"] == pytest.approx(0.02)
    assert report["gender"]["real"]["tv"] == pytest.approx(0.0)
    assert report["gender"]["conditional_accuracy"] == pytest.approx(0.98)  # 2 of the 50 "female" asks came out male
    assert report["age_bin"]["generated"]["tv"] == pytest.approx(1 - 1 / 9)

    tags = fairness_tags(report)
    assert tags["fairness.gender.tv"] == "0.0200" and tags["fairness.gender.conditional_accuracy"] == "0.9800"
    assert tags["fairness.gender.shares"] == "female 0.480, male 0.520"
    metrics = fairness_metrics(report)
    assert metrics["fairness_gender_tv"] == pytest.approx(0.02) and metrics["fairness_gender_tv_real"] == 0.0

    figure = plot_fairness(report, {"gender": {g: {"before_share": 0.4, "after_share": 0.5} for g in UNIFORM_GENDER}})
    assert len(figure.axes) == 2 and "TV 0.020" in figure.axes[0].get_title()


def test_requested_labels_are_stratified_over_the_target() -> None:
    """Every joint cell gets exactly its target share (largest remainder), so the marginals are exact too."""
    target = {"gender": {"female": 0.7, "male": 0.3}}
    index, names = stratified_requests({"gender": 2, "age_bin": 9}, target, n=9_000, seed=1)
    assert index.shape == (9_000, 2) and index.dtype == np.int64
    assert np.sum(names["gender"] == "female") == 6_300
    assert all(np.sum(names["age_bin"] == b) == 1_000 for b in AGE_BINS)  # no target: uniform
    assert np.sum((names["gender"] == "male") & (names["age_bin"] == "70+")) == round(9_000 * 0.3 / 9)
    assert (np.asarray(AGE_BINS, dtype=object)[index[:, 1]] == names["age_bin"]).all()
    again, _ = stratified_requests({"gender": 2, "age_bin": 9}, target, n=9_000, seed=1)
    assert np.array_equal(index, again)
    assert not np.array_equal(index[:50], np.sort(index[:50], axis=0))  # shuffled, not in cell order
    odd, odd_names = stratified_requests({"gender": 2}, {}, n=7, seed=0)
    assert len(odd) == 7 and abs(np.sum(odd_names["gender"] == "female") - 3.5) == 0.5


class _SlowGenerator(nn.Module):
    """Wraps a real generator and sleeps a known time per call: latency must see at least that."""

    def __init__(self, inner: nn.Module, sleep_s: float) -> None:
        super().__init__()
        self.inner, self.sleep_s = inner, sleep_s
        self.latent_dim, self.label_dims = inner.latent_dim, inner.label_dims

    def forward(self, z: torch.Tensor, labels=None, truncation_psi: float = 1.0) -> torch.Tensor:
        time.sleep(self.sleep_s)
        return self.inner(z, labels, truncation_psi=truncation_psi)


def test_latency_measures_one_face_per_request() -> None:
    generator = _SlowGenerator(build_generator("dcgan", {"resolution": 16, "latent_dim": 16, "width": 8}), 0.02)
    result = generation_latency(generator, repeats=8, warmup=1)
    assert result["latency_resolution"] == 16 and result["latency_device"].startswith("cpu")
    assert 20.0 <= result["latency_p50_ms"] <= result["latency_p95_ms"]  # at least the known sleep per face
    with pytest.raises(ValueError, match="repeats"):
        generation_latency(generator, repeats=0)

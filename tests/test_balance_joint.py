"""Joint balancing over ethnicity × gender cells and age bins: shares on target, costs reported honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facegen.attributes import AGE_BINS, ETHNICITIES
from facegen.data.balance import plan_joint_balance
from facegen.data.balance_report import shares_table, write_balance_report


def skewed_kept(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """UTKFace-like skew: ~43 % White, half aged 20-39, slightly more men; all labelled."""
    rng = np.random.default_rng(seed)
    ethnicity = rng.choice(ETHNICITIES, size=n, p=[0.43, 0.19, 0.14, 0.17, 0.07])
    gender = rng.choice(["female", "male"], size=n, p=[0.47, 0.53])
    age = rng.choice(AGE_BINS, size=n, p=[0.06, 0.06, 0.07, 0.30, 0.20, 0.10, 0.10, 0.06, 0.05])
    return pd.DataFrame(
        {
            "uri": [f"/faces/{i:05d}.jpg" for i in range(n)],
            "status": "kept",
            "ethnicity": ethnicity,
            "gender": gender,
            "age_bin": age,
        }
    )


def _cell_shares(plan: pd.DataFrame, weights: str | None = None) -> pd.Series:
    w = plan[weights] if weights else pd.Series(1.0, index=plan.index)
    return w.groupby([plan["ethnicity"], plan["gender"]]).sum() / w.sum()


@pytest.mark.parametrize("strategy", ["downsample", "oversample", "weights"])
def test_cells_come_out_uniform_and_age_moves_toward_uniform(strategy: str) -> None:
    kept = skewed_kept()
    plan, report = plan_joint_balance(kept, strategy=strategy, oversample_cap=3.0, max_weight_ratio=3.0, seed=1)

    shares = _cell_shares(plan, "sample_weight" if strategy == "weights" else None)
    assert len(shares) == 10 and np.allclose(shares, 0.1, atol=0.003)
    assert report["balanced"] is True
    before_age = kept["age_bin"].value_counts(normalize=True)
    after_age = pd.Series({g: v["after_share"] for g, v in report["shares"]["age_bin"].items()})
    uniform = 1 / len(AGE_BINS)
    assert (after_age - uniform).abs().sum() < 0.7 * (before_age.reindex(AGE_BINS) - uniform).abs().sum()
    assert report["shares"]["ethnicity"]["White"]["before_share"] > 0.4
    assert abs(report["shares"]["ethnicity"]["White"]["after_share"] - 0.2) < 0.005
    if strategy == "downsample":
        assert plan["uri"].is_unique and report["images_repeated"] == 0 and report["max_repeat"] == 1
    if strategy == "oversample":
        assert plan["uri"].value_counts().max() <= 3 and report["images_repeated"] > 0
        assert len(plan) > len(plan_joint_balance(kept, strategy="downsample", max_weight_ratio=3.0)[0])
    if strategy == "weights":
        assert len(plan) == len(kept) and plan["sample_weight"].mean() == pytest.approx(1.0)
    # the cost is stated and adds up
    assert report["images_dropped"] + (plan["uri"].nunique() if strategy != "weights" else len(kept)) == len(kept)


def test_plans_are_seeded_and_draw_index_counts_repeats() -> None:
    kept = skewed_kept(n=800)
    first, _ = plan_joint_balance(kept, strategy="oversample", seed=3)
    again, _ = plan_joint_balance(kept, strategy="oversample", seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert first.groupby("uri")["draw_index"].apply(lambda k: sorted(k) == list(range(len(k)))).all()


def test_targets_from_config_and_predicted_attributes() -> None:
    kept = skewed_kept(n=2000)
    kept["attr_gender"] = kept["gender"]
    kept.loc[:99, "attr_gender"] = None  # unknown: neither labelled nor confidently predicted
    plan, report = plan_joint_balance(
        kept, cells=["gender"], also=[], targets={"gender": {"female": 3, "male": 1}}, strategy="downsample"
    )
    shares = plan["attr_gender"].value_counts(normalize=True)
    assert shares["female"] == pytest.approx(0.75, abs=0.01)
    assert report["unlabelled"] == 100


def test_missing_cells_are_reported_not_hidden() -> None:
    kept = skewed_kept(n=500)
    kept = kept[kept["ethnicity"] != "Others"]
    plan, report = plan_joint_balance(kept, also=[], strategy="downsample")
    assert report["balanced"] is False and "Others" in report["note"]
    assert set(plan["ethnicity"]) == {"White", "Black", "Asian", "Indian"}


def test_report_files(tmp_path: Path) -> None:
    _plan, report = plan_joint_balance(skewed_kept(n=600), strategy="oversample")
    paths = write_balance_report(report, tmp_path)
    assert paths["png"].stat().st_size > 10_000
    table = pd.read_csv(paths["csv"])
    assert set(table["attribute"]) == {"ethnicity", "gender", "age_bin", "cells"}
    assert list(shares_table(report).columns)[:4] == ["attribute", "group", "before", "before_share"]
    text = paths["md"].read_text()
    assert "images dropped" in text and "images repeated" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "smote"}, "unknown strategy"),
        ({"cells": ["hair"]}, "unknown attribute"),
        ({"targets": {"gender": {"other": 1.0}}}, "outside the vocabulary"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_joint_balance(skewed_kept(n=50), **kwargs)

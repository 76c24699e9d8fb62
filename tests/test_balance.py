"""Balancing plans: exact equalisation when downsampling, capped repeats when oversampling, honest reports."""

from __future__ import annotations

import pandas as pd
import pytest

from facegen.data.balance import plan_balance


def kept_rows(**groups: int) -> pd.DataFrame:
    """Kept manifest rows with ``gender`` labels: ``kept_rows(female=5, male=2, none=1)``."""
    labels = [None if group == "none" else group for group, n in groups.items() for _ in range(n)]
    return pd.DataFrame(
        {"uri": [f"/faces/{i:03d}.jpg" for i in range(len(labels))], "gender": labels, "status": "kept"}
    )


def test_downsample_equalises_groups_exactly() -> None:
    kept = kept_rows(female=10, male=4, none=2)

    plan, report = plan_balance(kept, attribute="gender", strategy="downsample", seed=1)

    assert plan["gender"].value_counts().to_dict() == {"female": 4, "male": 4}
    assert plan["uri"].is_unique and plan["draw_index"].eq(0).all()
    assert set(plan["uri"]) <= set(kept["uri"])
    assert report["balanced"] is True
    assert report["before"] == {"female": 10, "male": 4}
    assert report["after"] == {"female": 4, "male": 4}
    assert report["unlabelled"] == 2
    assert (report["images_dropped"], report["images_repeated"], report["max_repeat"]) == (6, 0, 1)
    assert report["note"] is None


def test_plans_are_seeded() -> None:
    kept = kept_rows(female=30, male=5)

    first, _ = plan_balance(kept, attribute="gender", seed=0)
    again, _ = plan_balance(kept, attribute="gender", seed=0)
    other, _ = plan_balance(kept, attribute="gender", seed=1)

    pd.testing.assert_frame_equal(first, again)
    assert set(first["uri"]) != set(other["uri"])


def test_oversample_reaches_the_largest_group_within_the_cap() -> None:
    kept = kept_rows(female=10, male=3)

    plan, report = plan_balance(kept, attribute="gender", strategy="oversample", oversample_cap=4.0)

    draws = plan["uri"].value_counts()
    assert plan["gender"].value_counts().to_dict() == {"female": 10, "male": 10}
    assert draws.max() == 4 and report["max_repeat"] == 4
    assert sorted(draws[plan.loc[plan["gender"] == "male", "uri"].unique()]) == [3, 3, 4]
    # one row per draw: draw_index counts 0..k-1 for an image drawn k times
    assert plan.groupby("uri")["draw_index"].apply(sorted).map(lambda ks: ks == list(range(len(ks)))).all()
    assert report["balanced"] is True and report["images_repeated"] == 3 and report["images_dropped"] == 0


@pytest.mark.parametrize(("cap", "max_draws"), [(3.0, 3), (2.5, 2), (1.0, 1)])
def test_oversample_cap_bounds_draws_per_image(cap: float, max_draws: int) -> None:
    kept = kept_rows(female=20, male=3)

    plan, report = plan_balance(kept, attribute="gender", strategy="oversample", oversample_cap=cap)

    assert plan["uri"].value_counts().max() == max_draws == report["max_repeat"]
    assert report["after"] == {"female": 20, "male": 3 * max_draws}
    assert report["balanced"] is False and "cap" in report["note"]


def test_without_labels_every_kept_row_passes_through() -> None:
    kept = kept_rows(none=7)

    plan, report = plan_balance(kept, attribute="ethnicity", strategy="downsample")

    assert plan["uri"].tolist() == kept["uri"].tolist() and plan["draw_index"].eq(0).all()
    assert report["balanced"] is False and report["unlabelled"] == 7
    assert "no 'ethnicity' labels" in report["note"]


def test_predicted_labels_can_be_used_instead_of_file_name_labels() -> None:
    kept = kept_rows(none=6).assign(predicted_gender=["female"] * 4 + ["male"] * 2)

    plan, report = plan_balance(kept, attribute="gender", label_column="predicted_gender")

    assert plan["predicted_gender"].value_counts().to_dict() == {"female": 2, "male": 2}
    assert report["label_column"] == "predicted_gender" and report["balanced"] is True


def test_groups_absent_from_the_data_make_the_plan_unbalanced() -> None:
    kept = kept_rows(none=6).assign(ethnicity=["White"] * 4 + ["Asian"] * 2)

    plan, report = plan_balance(kept, attribute="ethnicity")

    assert plan["ethnicity"].value_counts().to_dict() == {"White": 2, "Asian": 2}
    assert report["before"]["Black"] == 0 and report["balanced"] is False
    assert "'Black'" in report["note"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attribute": "hair"}, "unknown attribute"),
        ({"attribute": "gender", "strategy": "smote"}, "unknown strategy"),
        ({"attribute": "gender", "oversample_cap": 0.5}, "oversample_cap"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_balance(kept_rows(female=2, male=2), **kwargs)


def test_labels_outside_the_vocabulary_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside the gender vocabulary"):
        plan_balance(kept_rows(female=2, Male=2), attribute="gender")

"""The labels build_dataset hands to train_gan: indices in ATTRIBUTE_VALUES order, −1 where unknown, and a
conditional config on unlabelled data stopped before the first training step with the fix spelled out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facegen.data.label_encoding import encode_attribute_labels, label_shares, labels_for_model, require_labels
from facegen.models.conditioning import label_dims_for

CONDITIONING = ["gender", "age_bin", "ethnicity"]


def test_plan_rows_become_index_rows_with_unspecified() -> None:
    plan = pd.DataFrame(
        {
            "attr_gender": ["female", "male", None],
            "attr_age_bin": ["70+", None, "0-2"],
            "attr_ethnicity": ["Others", "White", "Asian"],
        }
    )
    labels = encode_attribute_labels(plan)
    assert labels.dtype == np.int64 and labels.tolist() == [[0, 8, 4], [1, -1, 0], [-1, 0, 2]]
    assert labels_for_model(labels, label_dims_for(["ethnicity", "gender"])).tolist() == [[0, 4], [1, 0], [-1, 2]]
    missing_column = encode_attribute_labels(plan.drop(columns=["attr_age_bin"]))
    assert (missing_column[:, 1] == -1).all()
    with pytest.raises(ValueError, match="attr_gender holds values outside its vocabulary"):
        encode_attribute_labels(plan.assign(attr_gender=["woman", "male", None]))


def test_a_conditional_model_on_unlabelled_faces_fails_naming_the_labels_and_the_fix() -> None:
    unlabelled = np.full((40, 3), -1, dtype=np.int64)
    unlabelled[:, 0] = 1  # gender known, age and ethnicity not
    with pytest.raises(ValueError, match=r"age_bin known for 0%, ethnicity known for 0%.*make attributes"):
        require_labels(unlabelled, label_dims_for(CONDITIONING))
    require_labels(unlabelled, label_dims_for(["gender"]))  # what it is conditioned on is known: fine


def test_the_train_gan_step_refuses_before_training(tmp_path: Path) -> None:
    from PIL import Image

    from facegen.data.shards import write_shards
    from steps.train_gan import train_gan

    uris = []
    for i in range(8):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
        uris.append(str(tmp_path / f"{i}.png"))
    unlabelled = write_shards(
        pd.DataFrame({"uri": uris, "sample_weight": 1.0}), str(tmp_path / "set"), resolution=16, progress=False
    )
    with pytest.raises(ValueError, match="lack labels"):
        train_gan.entrypoint(
            unlabelled,
            tmp_path,
            {},
            training={"model": {"latent_dim": 8, "width": 8, "conditioning": CONDITIONING}},
        )


def test_label_shares_count_only_the_faces_that_carry_each_label() -> None:
    labels = np.array([[0, 3, 0], [0, -1, 0], [1, -1, 2], [-1, -1, 0]])
    shares = label_shares(labels)
    assert shares["gender"] == {"female": 2 / 3, "male": 1 / 3}
    assert shares["age_bin"]["20-29"] == 1.0 and sum(shares["age_bin"].values()) == 1.0
    assert shares["ethnicity"] == {"White": 0.75, "Black": 0.0, "Asian": 0.25, "Indian": 0.0, "Others": 0.0}
    assert "age_bin" not in label_shares(np.array([[0, -1, 0]]))  # no face carries it: no share to ask for
    with pytest.raises(ValueError, match="labels must be N×3"):
        label_shares(labels[:, :2])

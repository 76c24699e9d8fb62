"""great-expectations suite over the manifest (data docs + self-contained summary) and evidently drift reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facegen.data.faces import FaceCheck
from facegen.data.quality import QualityConfig
from facegen.validation.drift import drift_frame, drift_report
from facegen.validation.expectations import ManifestExpectations, group_counts, validate_manifest


def manifest(n: int = 120, seed: int = 0, *, blur_shift: float = 0.0, female_share: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "uri": [f"/faces/{seed}_{i}.jpg" for i in range(n)],
            "sha256": [f"{seed:08x}{i:056x}" for i in range(n)],
            "n_bytes": pd.array(rng.integers(5000, 9000, n), dtype="Int64"),
            "width": pd.array(np.full(n, 200), dtype="Int64"),
            "height": pd.array(np.full(n, 200), dtype="Int64"),
            "blur_score": rng.normal(40 + blur_shift, 5, n).clip(8),
            "face_score": rng.integers(3, 40, n).astype(float),
            "status": "kept",
            "reason": None,
            "gender": rng.choice(["female", "male"], n, p=[female_share, 1 - female_share]),
            "age_bin": rng.choice(["20-29", "30-39", "0-2", "3-9", "10-19", "40-49", "50-59", "60-69", "70+"], n),
            "ethnicity": rng.choice(["White", "Black", "Asian", "Indian", "Others"], n),
        }
    )
    frame.loc[n - 3 :, ["status", "reason"]] = ["quarantined", "undecodable"]
    frame.loc[n - 3 :, ["width", "height"]] = pd.NA
    return frame


def test_a_clean_manifest_passes_and_writes_both_reports(tmp_path: Path) -> None:
    settings = ManifestExpectations(QualityConfig(face_check=FaceCheck(min_face_score=3)), min_per_group=1)
    outcome = validate_manifest(manifest(), tmp_path, settings)

    assert outcome.success, outcome.failures()
    assert outcome.statistics["unsuccessful"] == 0 and outcome.statistics["evaluated"] >= 20
    assert outcome.docs_index.is_file() and (tmp_path / "data_docs" / "validations").is_dir()
    summary = outcome.summary_html.read_text()
    assert "PASSED" in summary and "http" not in summary.replace("data_docs/index.html", "")  # self-contained
    assert (tmp_path / "results.json").is_file()


def test_each_broken_rule_is_named(tmp_path: Path) -> None:
    broken = manifest()
    broken.loc[1, "sha256"] = broken.loc[0, "sha256"]  # duplicate among kept
    broken.loc[2, "ethnicity"] = "Martian"  # outside the vocabulary
    broken.loc[3, "width"] = 10  # below min_side
    broken.loc[4, "reason"] = "cosmic_rays"  # unknown reason code
    broken["age_bin"] = broken["age_bin"].replace({"70+": "60-69"})  # group 70+ empty

    outcome = validate_manifest(broken, tmp_path, ManifestExpectations(min_per_group=1))

    assert not outcome.success
    failed = {(r["expectation"], r["column"]) for r in outcome.failures()}
    assert ("expect_column_values_to_be_unique", "sha256") in failed
    assert ("expect_column_values_to_be_in_set", "ethnicity") in failed
    assert ("expect_column_values_to_be_between", "width") in failed
    assert ("expect_column_values_to_be_in_set", "reason") in failed
    assert ("expect_column_values_to_be_between", "count") in failed  # the empty age group
    assert "FAILED" in outcome.summary_html.read_text()


def test_group_counts_prefer_resolved_attributes() -> None:
    kept = pd.DataFrame({"gender": [None, "male"], "attr_gender": ["female", "male"]})
    counts = group_counts(kept, ("gender",)).set_index("group")["count"].to_dict()
    assert counts == {"female": 1, "male": 1}


def test_first_run_has_no_reference_and_only_a_note(tmp_path: Path) -> None:
    outcome = drift_report(manifest(), None, tmp_path)
    assert not outcome.has_reference and outcome.drifted_share == 0
    assert "first run" in outcome.html_path.read_text()


def test_drift_is_detected_against_a_shifted_reference(tmp_path: Path) -> None:
    reference = manifest(400, seed=1)
    same = drift_report(manifest(400, seed=2), reference, tmp_path / "same")
    shifted = drift_report(manifest(400, seed=3, blur_shift=25, female_share=0.9), reference, tmp_path / "shift")

    assert same.has_reference and not same.columns["blur_score"]["drifted"]
    assert shifted.columns["blur_score"]["drifted"] and shifted.columns["gender"]["drifted"]
    assert shifted.drifted_share > same.drifted_share
    assert shifted.html_path.stat().st_size > 100_000 and shifted.json_path.is_file()


def test_drift_frame_uses_kept_rows_and_resolved_attributes() -> None:
    frame = manifest(20).assign(attr_gender="female")
    compared = drift_frame(frame)
    assert len(compared) == 17 and set(compared["gender"]) == {"female"}
    assert {"width", "height", "blur_score", "face_score", "age_bin", "ethnicity"} <= set(compared.columns)

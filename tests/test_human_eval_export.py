"""Human evaluation export: pair counts, counterbalanced sides, answer key matching what raters see, offline page."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.humaneval.export import (
    ANSWER_KEY_COLUMNS,
    CANDIDATE_VS_CHAMPION,
    QUESTIONS,
    RATER_COLUMNS,
    REAL_VS_GENERATED,
    TEMPLATE_COLUMNS,
    export_pairwise_set,
)
from facegen.provenance.credentials import TRUST_ANCHOR_FILE
from facegen.provenance.verify import verify_files
from tests.provenance_fixtures import pairwise_marking, signing_credentials


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def random_faces(n: int, seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


@pytest.fixture
def inputs(real_faces_32: np.ndarray) -> dict[str, np.ndarray]:
    """Real UTKFace faces, plus stand-ins for the candidate's and the champion's faces (same 32×32 size)."""
    return {"generated": random_faces(30, 1), "real": real_faces_32[:40], "champion": random_faces(25, 2)}


def page_images(html_text: str) -> dict[str, dict[str, np.ndarray]]:
    """pair_id → {"left", "right"} images (uint8 3×H×W) decoded from the page's inline PNGs."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for pair_id, body in re.findall(r'<section class="pair" id="(p\d+)"[^>]*>(.*?)</section>', html_text):
        sides = re.findall(
            r'data-side="(left|right)"[^>]*><img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', body
        )
        found[pair_id] = {
            side: np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).transpose(2, 0, 1)
            for side, data in sides
        }
    return found


def test_writes_both_tasks_with_balanced_sides(tmp_path: Path, inputs: dict[str, np.ndarray]) -> None:
    paths = export_pairwise_set(
        inputs["generated"],
        inputs["real"],
        tmp_path,
        n_pairs=12,
        seed=3,
        champion=inputs["champion"],
        **pairwise_marking(inputs["generated"], inputs["champion"]),
    )
    assert set(paths) == {"rater_dir", "html", "ratings_template", "images_dir", "answer_key"}
    assert all(path.exists() for path in paths.values())
    # The answer key is not among the files that go to raters.
    assert not paths["answer_key"].is_relative_to(paths["rater_dir"])
    assert sorted(p.name for p in paths["rater_dir"].iterdir()) == ["images", "index.html", "ratings_template.csv"]

    columns, template = read_csv(paths["ratings_template"])
    assert columns == TEMPLATE_COLUMNS
    key_columns, key = read_csv(paths["answer_key"])
    assert key_columns == ANSWER_KEY_COLUMNS
    assert [row["pair_id"] for row in template] == [row["pair_id"] for row in key]
    assert len({row["pair_id"] for row in template}) == 24
    for task in (REAL_VS_GENERATED, CANDIDATE_VS_CHAMPION):
        rows = [row for row in template if row["task"] == task]
        assert len(rows) == 12 and {row["question"] for row in rows} == {QUESTIONS[task]}
    assert all(row["choice"] == "" and row["rater"] == "" for row in template)
    # One set id, the page's, on every template row and every answer key row.
    page_set_id = re.search(r'<body data-set-id="([^"]+)"', paths["html"].read_text(encoding="utf-8")).group(1)
    assert re.fullmatch(r"facegen-humaneval-[0-9a-f]{16}", page_set_id)
    assert {row["set_id"] for row in template} == {row["set_id"] for row in key} == {page_set_id}
    # Image names carry the pair and side only; 48 images on disk.
    names = [row[column] for row in template for column in ("left_image", "right_image")]
    assert all(re.fullmatch(r"images/p\d+_(left|right)\.png", name) for name in names)
    assert len(list(paths["images_dir"].glob("*.png"))) == 48

    rvg = [row for row in key if row["task"] == REAL_VS_GENERATED]
    cvc = [row for row in key if row["task"] == CANDIDATE_VS_CHAMPION]
    assert sum(row["generated_side"] == "left" for row in rvg) == 6 and {r["candidate_side"] for r in rvg} == {""}
    assert sum(row["candidate_side"] == "left" for row in cvc) == 6 and {r["generated_side"] for r in cvc} == {""}
    # Both tasks are interleaved in the shown order, not one block after the other.
    tasks_in_order = [row["task"] for row in template]
    assert tasks_in_order != sorted(tasks_in_order) and tasks_in_order != sorted(tasks_in_order, reverse=True)
    # Each pair draws distinct images within its task.
    for rows, other in ((rvg, "real"), (cvc, "champion")):
        candidate = [r["left_index"] if r["left_source"] == "candidate" else r["right_index"] for r in rows]
        others = [r["left_index"] if r["left_source"] == other else r["right_index"] for r in rows]
        assert len(set(candidate)) == len(set(others)) == 12


def test_answer_key_matches_the_images_raters_see(tmp_path: Path, inputs: dict[str, np.ndarray]) -> None:
    paths = export_pairwise_set(
        inputs["generated"],
        inputs["real"],
        tmp_path,
        n_pairs=8,
        seed=5,
        champion=inputs["champion"],
        candidate_label="v7",
        **pairwise_marking(inputs["generated"], inputs["champion"]),
    )
    sources = {"v7": inputs["generated"], "real": inputs["real"], "champion": inputs["champion"]}
    shown = page_images(paths["html"].read_text(encoding="utf-8"))
    _, key = read_csv(paths["answer_key"])
    assert len(shown) == len(key) == 16
    for row in key:
        for side in ("left", "right"):
            expected = sources[row[f"{side}_source"]][int(row[f"{side}_index"])]
            assert np.array_equal(shown[row["pair_id"]][side], expected)
            image_file = paths["rater_dir"] / "images" / f"{row['pair_id']}_{side}.png"
            on_disk = np.asarray(Image.open(image_file)).transpose(2, 0, 1)
            assert np.array_equal(on_disk, expected)
            [report] = verify_files([image_file], signing_credentials() / TRUST_ANCHOR_FILE)
            if row[f"{side}_source"] == "real":  # a photograph is never claimed as generated
                assert report.manifest.state == "absent"
            else:  # a generated face says what made it: the candidate is not registered yet, the champion is
                version, first_seed = ("1", 1000) if row[f"{side}_source"] == "champion" else (None, 0)
                assert report.manifest.trusted and report.manifest.generator_version == version
                assert report.manifest.parameters["seed"] == first_seed + int(row[f"{side}_index"])
        if row["task"] == REAL_VS_GENERATED:
            assert row[f"{row['generated_side']}_source"] == "v7"
            assert row[f"{'right' if row['generated_side'] == 'left' else 'left'}_source"] == "real"
        else:
            assert row[f"{row['candidate_side']}_source"] == "v7"
            assert {row["left_source"], row["right_source"]} == {"v7", "champion"}


def test_page_is_self_contained_and_lists_the_template_pairs(tmp_path: Path, inputs: dict[str, np.ndarray]) -> None:
    paths = export_pairwise_set(
        inputs["generated"], inputs["real"], tmp_path, n_pairs=5, seed=0, **pairwise_marking(inputs["generated"])
    )
    page = paths["html"].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert re.search(r"<script[^>]*\bsrc=", page) is None
    assert 'id="download-csv"' in page and 'id="download-json"' in page and "new Blob(" in page
    assert "text/csv" in page and "application/json" in page
    # Small faces are shown upscaled.
    assert all(int(width) >= 128 for width in re.findall(r'<img [^>]*width="(\d+)"', page))
    data = re.search(r'<script type="application/json" id="pairs-data">(.*?)</script>', page, re.S)
    embedded = json.loads(data.group(1))
    _, template = read_csv(paths["ratings_template"])
    assert embedded == [{k: row[k] for k in TEMPLATE_COLUMNS if k not in RATER_COLUMNS} for row in template]
    columns = re.search(r'<script type="application/json" id="columns-data">(.*?)</script>', page, re.S)
    assert json.loads(columns.group(1)) == TEMPLATE_COLUMNS
    # Only real-vs-generated pairs without a champion; the page says nothing about which side is which.
    assert {row["task"] for row in template} == {REAL_VS_GENERATED}
    assert "candidate" not in page and "generated_side" not in page


def test_same_seed_same_set_other_seed_other_set(tmp_path: Path, inputs: dict[str, np.ndarray]) -> None:
    def export(out: str, seed: int) -> dict[str, bytes]:
        paths = export_pairwise_set(
            inputs["generated"],
            inputs["real"],
            tmp_path / out,
            n_pairs=9,
            seed=seed,
            **pairwise_marking(inputs["generated"]),
        )
        files = {name: paths[name].read_bytes() for name in ("ratings_template", "answer_key")}
        return {**files, "shown": page_images(paths["html"].read_text(encoding="utf-8"))}

    first, again, other = export("a", 11), export("b", 11), export("c", 12)
    # The same pairs, sides, set id and pixels (the signed image bytes differ: each manifest has its own id).
    assert first["answer_key"] == again["answer_key"] and first["ratings_template"] == again["ratings_template"]
    assert first["shown"].keys() == again["shown"].keys()
    for pair_id, sides in first["shown"].items():
        assert all(np.array_equal(image, again["shown"][pair_id][side]) for side, image in sides.items())
    assert first["answer_key"] != other["answer_key"]
    # Odd n: the generated face is on the left in 4 or 5 of 9 pairs.
    _, key = read_csv(tmp_path / "a" / "answer_key.csv")
    assert sum(row["generated_side"] == "left" for row in key) in (4, 5)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: {**d, "generated": d["generated"].astype(np.float32)}, "generated must be uint8"),
        (lambda d: {**d, "real": d["real"].transpose(0, 2, 3, 1).copy()}, r"real must be N×3×H×W"),
        (lambda d: {**d, "generated": d["generated"][0]}, r"generated must be N×3×H×W"),
        (lambda d: {**d, "generated": d["generated"].tolist()}, "must be a numpy array"),
        (lambda d: {**d, "champion": random_faces(25, 2, size=16)}, "share one H×W"),
        (lambda d: {**d, "generated": d["generated"][:10]}, r"n_pairs=12 needs 12 distinct generated images, only 10"),
        (lambda d: {**d, "champion": d["champion"][:11]}, r"needs 12 distinct champion images, only 11"),
        (lambda d: {**d, "n_pairs": 0}, "n_pairs must be a positive integer"),
        (lambda d: {**d, "candidate_label": "real"}, "candidate_label"),
    ],
)
def test_bad_input_is_refused_clearly(tmp_path: Path, inputs: dict[str, np.ndarray], change, match) -> None:
    args = change({**inputs, "n_pairs": 12, "candidate_label": "candidate"})
    with pytest.raises(ValueError, match=match):
        export_pairwise_set(
            args["generated"],
            args["real"],
            tmp_path,
            n_pairs=args["n_pairs"],
            champion=args["champion"],
            candidate_label=args["candidate_label"],
            **pairwise_marking(inputs["generated"], inputs["champion"]),
        )
    assert not (tmp_path / "answer_key.csv").exists()

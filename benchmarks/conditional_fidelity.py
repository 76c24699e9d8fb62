"""Does the conditional generator draw what it is asked for? Training variants side by side, scored like the gate.

    nice -n 10 .venv/bin/python benchmarks/conditional_fidelity.py --images 6000 --weights 0,1.0,0.5 \\
        --out .facegen/benchmarks/conditional-fidelity

Every variant trains in this process, one after the other, on the same data with the same seed: configs/local.yaml's
``train_gan`` training block with ``aux_classifier_weight`` set to each of ``--weights`` (AC-GAN class heads, 0 =
off), on the first ``--images`` UTKFace faces at ``--resolution`` with their file-name labels, drawn by the balance
plan configs/local.yaml asks for (``strategy: weights``). Each generator is then asked for ``--generated`` stratified
label requests through the pipeline's seed→face path (facegen.metrics.samples.evaluation_faces) and scored exactly as
evaluate_fairness scores it: the registered facegen-attributes classifier (``--tracking-uri``, read only) reads the
faces, facegen.metrics.fairness.fairness_report corrects the shares with its held-out readings at this resolution
(facegen.attributes_model.scoring.held_out_at). Per attribute: classified as requested (conditional accuracy), the
classifier's own accuracy (its ceiling), raw and corrected TV to the balance target, corrected min/max ratio.
Writes ``report.json`` (after every variant) and ``grid_w<weight>.png`` (64 faces, fixed seeds) to ``--out``.
Cost on 2 shared CPU cores: ~2.1 CPU-seconds a generator step, so a 10-epoch (~930-step) variant is ~33 CPU minutes;
``--epochs`` shortens every variant alike.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ZIP = ROOT.parent / "shared/data/utkface/UTKFace.zip"


def _local_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "configs/local.yaml").read_text())


def _training_set(images: int, resolution: int, balance: dict[str, Any]):
    """Faces, label rows, sampling weights and balance shares of the first ``images`` faces, as the pipeline plans
    them (file-name labels, balance's plan)."""
    import pandas as pd

    from facegen.data.balance import plan_joint_balance
    from facegen.data.label_encoding import encode_attribute_labels
    from facegen.data.labels import parse_utkface_name
    from facegen.data.packing import pack_images

    archive = str(ZIP.resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[:images]
    kept = pd.DataFrame({"uri": [f"zip://{archive}!/{m}" for m in members]})
    parsed = pd.DataFrame([parse_utkface_name(m) for m in members])
    for name in ("gender", "age_bin", "ethnicity"):
        kept[f"attr_{name}"] = parsed[name]
    plan, report = plan_joint_balance(kept, **{k: v for k, v in balance.items() if v is not None})
    packed = pack_images(plan, resolution=resolution, progress=False)
    return packed, encode_attribute_labels(plan), plan["sample_weight"].to_numpy(), report["shares"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6000, help="first N faces of the zip")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--weights", default="0,1.0", help="aux_classifier_weight of each variant")
    parser.add_argument("--epochs", type=int, default=None, help="default: configs/local.yaml's")
    parser.add_argument("--generated", type=int, default=2000, help="stratified label requests per generator")
    parser.add_argument("--real", type=int, default=2000, help="training faces the classifier reads as a reference")
    parser.add_argument(
        "--tracking-uri", help="MLflow store holding facegen-attributes (default: this checkout's, as make train uses)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image
    from torchvision.utils import make_grid

    from facegen.attributes import ATTRIBUTE_VALUES
    from facegen.attributes_model.registry import load_attribute_classifier
    from facegen.attributes_model.scoring import held_out_at
    from facegen.data.label_encoding import labels_for_model
    from facegen.gates import FairnessThresholds
    from facegen.metrics.fairness import fairness_report
    from facegen.metrics.samples import balance_targets, evaluation_faces
    from facegen.models.conditioning import label_dims_for
    from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME
    from facegen.registry.tracking import default_tracking_uri, mlflow_client
    from facegen.train.config import TrainingConfig
    from facegen.train.loop import train_gan

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    local = _local_config()
    training = {**local["steps"]["train_gan"]["parameters"]["training"], "device": "cpu"}
    if args.epochs is not None:
        training["epochs"] = args.epochs
    gates = FairnessThresholds.from_config(local["parameters"]["fairness_gates"])

    started = time.perf_counter()
    packed, labels, weights, shares = _training_set(
        args.images, args.resolution, local["steps"]["balance"]["parameters"]
    )
    targets = balance_targets(shares)
    print(json.dumps({"faces": len(packed), "pack_seconds": round(time.perf_counter() - started, 1)}), flush=True)

    classifier, registered = load_attribute_classifier(mlflow_client(args.tracking_uri or default_tracking_uri()))
    described = f"{ATTRIBUTES_MODEL_NAME}@{ATTRIBUTES_ALIAS} (version {registered.version})"
    held_out = {a: held_out_at(classifier.spec, args.resolution, a, model=described) for a in ATTRIBUTE_VALUES}
    rows = np.random.default_rng(args.seed).choice(len(packed), size=args.real, p=weights / weights.sum())
    reference = classifier.predict(packed[rows]).probabilities

    results: dict[str, Any] = {}
    for weight in [float(w) for w in args.weights.split(",")]:
        config = TrainingConfig.from_dict({**training, "aux_classifier_weight": weight})
        began, cpu_began = time.perf_counter(), time.process_time()
        result = train_gan(
            packed,
            config,
            labels=labels_for_model(labels, label_dims_for(config.model.get("conditioning"))),
            sample_weights=weights,
            progress=False,
        )
        train_cpu_minutes = (time.process_time() - cpu_began) / 60
        generator = result.generator
        sample = evaluation_faces(generator, args.generated, seed=args.seed + 4_000_037, targets=targets)
        report = fairness_report(
            classifier.predict(sample.faces).probabilities,
            targets,
            reference=reference,
            requested=sample.requested,
            held_out=held_out,
            gates=gates,
            seed=args.seed,
        )
        grid = evaluation_faces(generator, 64, seed=7, targets=targets).faces
        picture = make_grid(torch.from_numpy(grid), nrow=8, padding=1).permute(1, 2, 0).numpy()
        Image.fromarray(picture).save(args.out / f"grid_w{weight:g}.png")
        last = result.history[-1]
        results[f"{weight:g}"] = {
            "generator_steps": result.generator_steps,
            "train_cpu_minutes": round(train_cpu_minutes, 2),
            "wall_seconds": round(time.perf_counter() - began, 1),
            "last_step_metrics": last,
            "fairness": {
                attribute: {
                    "conditional_accuracy": entry["conditional_accuracy"],
                    "classifier_accuracy": entry["classifier_accuracy"],
                    "tv_raw": entry["generated"]["tv_raw"],
                    "tv": entry["generated"]["tv"],
                    "representation_ratio": entry["generated"]["representation_ratio"],
                }
                for attribute, entry in report.items()
            },
        }
        print(json.dumps({"aux_classifier_weight": weight, **results[f"{weight:g}"]}, default=str), flush=True)
        (args.out / "report.json").write_text(
            json.dumps(
                {
                    "faces": len(packed),
                    "resolution": args.resolution,
                    "generated": args.generated,
                    "classifier": described,
                    "gates": {"max_tv": gates.max_tv, "min_representation_ratio": gates.min_representation_ratio},
                    "results": results,
                },
                indent=2,
                default=str,
            )
        )
    print(
        f"\n{len(packed)} faces at {args.resolution}², {training['epochs']} epochs, {args.generated} stratified "
        f"requests per generator; classifier {described}"
    )
    print(
        "| aux_classifier_weight | steps | attribute | classified as requested | classifier accuracy | TV raw "
        "| TV corrected | min/max corrected |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for weight, result in results.items():
        for attribute, row in result["fairness"].items():
            print(
                f"| {weight} | {result['generator_steps']} | {attribute} | {row['conditional_accuracy']:.3f} "
                f"| {row['classifier_accuracy']:.3f} | {row['tv_raw']:.3f} | {row['tv']:.3f} "
                f"| {row['representation_ratio']:.3f} |"
            )


if __name__ == "__main__":
    main()

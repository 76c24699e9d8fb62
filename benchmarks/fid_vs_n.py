"""FID at N moves with the number of generated faces N; FID∞ and KID are meant not to. Measured on one generator.

    nice -n 10 .venv/bin/python benchmarks/fid_vs_n.py --out .facegen/benchmarks/fid-vs-n
    python benchmarks/fid_vs_n.py --bundle PATH/TO/generator_bundle --out /tmp/fid-vs-n

The generator is ``--bundle`` (a saved generator bundle), or one trained here by facegen's loop on configs/local.yaml's
training (unconditional: the figure depends on N, not on labels) for ``--epochs`` over the first ``--images`` UTKFace
faces packed at ``--resolution``, and saved to ``--out``. The largest N's faces (seeds ``--seed …``, through the one
seed→face path) go through Inception once; the faces of N are the first N of them — what an evaluation at N draws —
scored against the cached features (``fid_vs_minutes._real_features``) of ``--real`` distinct training faces through
the metrics registry: FID at N and KID (``fidelity``, KID subsets of ``--kid-subset-size``) and FID∞ (``fid_inf``, fit
on those N faces' own features). The spread: the same figures on up to ``--max-sets`` disjoint sets of N faces.
Prints a table and writes ``fid_vs_n.png`` and ``points.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from fid_vs_minutes import ZIP, _real_features

ROOT = Path(__file__).resolve().parents[1]


def _generator(args: argparse.Namespace, packed: np.ndarray):
    """``--bundle``, else a brief run of the library's train loop on local.yaml's training, unconditional."""
    from facegen.models.bundle import load_generator_bundle, save_generator_bundle
    from facegen.train.config import TrainingConfig
    from facegen.train.loop import train_gan

    if args.bundle is not None:
        return load_generator_bundle(args.bundle), {"bundle": str(args.bundle)}
    config = yaml.safe_load((ROOT / "configs/local.yaml").read_text())
    values = config["steps"]["train_gan"]["parameters"]["training"]
    values.update(epochs=args.epochs, device="cpu", checkpoint_every_steps=0, fid_every_steps=0)
    values["model"] = {**values["model"], "conditioning": None}
    training = TrainingConfig.from_dict(values)
    started = time.process_time()
    result = train_gan(packed, training, progress=False)
    setup = {
        "training": values,
        "images": len(packed),
        "cpu_minutes": round((time.process_time() - started) / 60, 2),
        "generator_steps": result.generator_steps,
        "bundle": str(
            save_generator_bundle(
                args.out / "generator_bundle", training.architecture, result.model_config, result.generator
            )
        ),
    }
    print(json.dumps({k: v for k, v in setup.items() if k != "training"}), flush=True)
    return result.generator, setup


def _figures(generated: np.ndarray, real: np.ndarray, kid_subset_size: int) -> dict[str, float]:
    from facegen.metrics.registry import MetricInputs, calc_metric

    inputs = MetricInputs(generated_features=generated, real_features=real, device="cpu")
    fidelity = calc_metric("fidelity", inputs, kid_subset_size=kid_subset_size, kid_subsets=100, prc_neighborhood=3)
    fid_inf = calc_metric("fid_inf", inputs)
    return {
        "fid": fidelity.values["fid"],
        "fid_inf": fid_inf.values["fid_inf"],
        "fid_inf_slope": fid_inf.values["fid_inf_slope"],
        "kid": fidelity.values["kid_mean"],
        "fid_seconds": fidelity.seconds,
        "fid_inf_seconds": fid_inf.seconds,
    }


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("fid", "FID at N"), ("fid_inf", "FID∞")):
        left.errorbar(
            sizes, [r["mean"][key] for r in rows], yerr=[r["sd"][key] for r in rows], marker="o", capsize=3, label=label
        )
    left.set(xscale="log", xlabel="generated faces N", ylabel="FID", title="FID at N vs FID∞ (mean ± sd over sets)")
    left.legend()
    right.errorbar(
        sizes,
        [r["mean"]["kid"] for r in rows],
        yerr=[r["sd"]["kid"] for r in rows],
        marker="o",
        capsize=3,
        color="tab:green",
    )
    right.set(xscale="log", xlabel="generated faces N", ylabel="KID", title="KID (unbiased) at N")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="generator bundle (default: train one here)")
    parser.add_argument("--images", type=int, default=6000, help="first N faces of the zip: training and real set")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--sizes", default="250,500,1000,2000,4000", help="generated faces N, comma-separated")
    parser.add_argument("--real", type=int, default=2000, help="distinct training faces behind the real features")
    parser.add_argument("--kid-subset-size", type=int, default=250, help="as configs/local.yaml's evaluate")
    parser.add_argument("--max-sets", type=int, default=6, help="disjoint sets of N faces behind the spread")
    parser.add_argument("--seed", type=int, default=1_000_003)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import pandas as pd
    import torch

    from facegen.data.packing import pack_images
    from facegen.metrics.features import inception_features, unique_images
    from facegen.metrics.inception_weights import ensure_inception_weights
    from facegen.metrics.samples import evaluation_faces

    torch.set_num_threads(args.threads)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    archive = str(ZIP.resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[: args.images]
    packed = pack_images(pd.DataFrame({"uri": [f"zip://{archive}!/{m}" for m in members]}), resolution=args.resolution)
    weights = ensure_inception_weights()
    real_images = unique_images(packed)[: args.real]
    started = time.perf_counter()
    real = _real_features(real_images, weights, "cpu", args.out / f"real_{args.resolution}px_{args.real}.npz")
    print(json.dumps({"real_features": real.count, "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    generator, setup = _generator(args, packed)
    started = time.perf_counter()
    faces = evaluation_faces(generator, sizes[-1], seed=args.seed, targets={}).faces
    features = inception_features(faces, weights_path=weights, progress=True)
    extraction = time.perf_counter() - started
    print(json.dumps({"generated_features": len(features), "seconds": round(extraction, 1)}), flush=True)

    rows = []
    for n in sizes:
        sets = [features[i * n : (i + 1) * n] for i in range(min(len(features) // n, args.max_sets))]
        figures = [_figures(subset, real.features, args.kid_subset_size) for subset in sets]
        keys = ("fid", "fid_inf", "kid")
        row = {
            "n": n,
            "sets": len(sets),
            "first": figures[0],  # the first n faces: what an evaluation at n reports
            "mean": {key: float(np.mean([f[key] for f in figures])) for key in keys},
            "sd": {key: float(np.std([f[key] for f in figures], ddof=1)) if len(sets) > 1 else 0.0 for key in keys},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    (args.out / "points.json").write_text(
        json.dumps({"setup": setup, "real": real.count, "extraction_seconds": extraction, "rows": rows}, indent=2)
    )
    _plot(rows, args.out / "fid_vs_n.png")
    print(
        f"\n{sizes[-1]} generated faces at {args.resolution}² (first N of them, and up to {args.max_sets} disjoint "
        f"sets of N) vs {real.count} real"
    )
    print(
        "| N | FID at N (first N) | FID∞ (first N) | KID (first N) | sets | FID mean ± sd | FID∞ mean ± sd | "
        "KID mean ± sd | s: FID / FID∞ |"
    )
    print("|---" * 9 + "|")
    for row in rows:
        first, mean, sd = row["first"], row["mean"], row["sd"]
        print(
            f"| {row['n']} | {first['fid']:.1f} | {first['fid_inf']:.1f} | {first['kid']:.4f} | {row['sets']} | "
            f"{mean['fid']:.1f} ± {sd['fid']:.1f} | {mean['fid_inf']:.1f} ± {sd['fid_inf']:.1f} | "
            f"{mean['kid']:.4f} ± {sd['kid']:.4f} | {first['fid_seconds']:.1f} / {first['fid_inf_seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()

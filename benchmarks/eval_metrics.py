"""Benchmark: evaluating a generator against cached real Inception features vs recomputing both sides.

    nice -n 10 python benchmarks/eval_metrics.py --generated 500 --real 1000 --resolution 32 --threads 2

Times (1) the real faces' feature extraction, done once and cached as a ``RealFeatures`` record, (2) an evaluation
with that cache: the generated faces' features then FID/KID/precision/recall, and, as the baseline measured in the
same process, (3) ``compute_fidelity``, which extracts both sides again. Also times the memorisation report on the
same features. Generated faces come from an untrained DCGAN of the same resolution: the time does not depend on
what the faces look like. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/utkface/UTKFace.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ZIP)
    parser.add_argument("--device", default=None, help="cpu or cuda[:N]; default cuda when available")
    parser.add_argument("--generated", type=int, default=None, help="default 10000 on cuda, 500 on cpu")
    parser.add_argument("--real", type=int, default=None, help="default 20000 on cuda, 1000 on cpu")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    from facegen.data.packing import pack_images
    from facegen.devices import resolve_device
    from facegen.metrics.features import RealFeatures, inception_features, unique_images
    from facegen.metrics.fidelity import compute_fidelity, fidelity_from_features
    from facegen.metrics.inception_weights import ensure_inception_weights
    from facegen.metrics.memorisation import memorisation_report
    from facegen.models.registry import build_generator
    from facegen.models.sampling import base_seeds, faces_from_seeds

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    n_generated = args.generated or (10_000 if on_gpu else 500)
    n_real = args.real or (20_000 if on_gpu else 1000)
    weights = ensure_inception_weights()

    archive = str(args.source.resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[:n_real]
    packed = pack_images(
        pd.DataFrame({"uri": [f"zip://{archive}!/{m}" for m in members]}), resolution=args.resolution, progress=False
    )
    real = unique_images(packed)  # both paths score the same set (UTKFace holds a few pixel-identical files)
    generator = build_generator("dcgan", {"resolution": args.resolution}).to(device)
    generated = faces_from_seeds(generator, base_seeds(0, n_generated), device=device)
    options = dict(weights_path=weights, batch_size=args.batch, device=device)

    def timed(fn):
        if on_gpu:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        if on_gpu:
            torch.cuda.synchronize(device)
        return out, time.perf_counter() - start

    inception_features(generated[: args.batch], **options)  # warm-up: weights read, kernels chosen
    cached, real_s = timed(lambda: RealFeatures.from_images(real, **options))
    generated_features, generated_s = timed(lambda: inception_features(generated, **options))
    metrics, metrics_s = timed(
        lambda: fidelity_from_features(
            generated_features, cached.features, kid_subset_size=args.kid_subset_size, device=device
        )
    )
    recomputed, recompute_s = timed(
        lambda: compute_fidelity(
            generated,
            real,
            weights_path=weights,
            kid_subset_size=args.kid_subset_size,
            batch_size=args.batch,
            device=str(device),
        )
    )
    _, memorisation_s = timed(lambda: memorisation_report(generated_features, cached.features, device=device))

    cached_eval_s = generated_s + metrics_s
    name = torch.cuda.get_device_name(device) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    report = {
        "device": name,
        "resolution": args.resolution,
        "generated": n_generated,
        "real": cached.count,
        "real_repeats_dropped": len(packed) - cached.count,
        "real_features_once_s": round(real_s, 2),
        "eval_cached_s": round(cached_eval_s, 2),
        "eval_cached_generated_features_s": round(generated_s, 2),
        "eval_cached_metrics_s": round(metrics_s, 2),
        "recompute_both_s": round(recompute_s, 2),
        "cached_over_recompute": round(cached_eval_s / recompute_s, 3),
        "speedup_cached_vs_recompute": round(recompute_s / cached_eval_s, 2),
        "memorisation_s": round(memorisation_s, 2),
        "max_metric_difference_cached_vs_recompute": max(abs(metrics[k] - recomputed[k]) for k in metrics),
        "metrics": {k: round(v, 5) for k, v in metrics.items()},
        "images_per_s": round(n_generated / generated_s, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Quality per training time: FID of the EMA generator against minutes of training, for one training config.

    python benchmarks/fid_vs_minutes.py --config configs/gpu.yaml --resolution 64 --minutes 20 --out /tmp/fid-style
    python benchmarks/fid_vs_minutes.py --config configs/local.yaml --resolution 32 --minutes 8 --device cpu \\
        --fid-samples 500 --real 1000 --fid-every-steps 300 --out /tmp/fid-dcgan

Trains ``steps.train_gan.parameters.training`` of a pipeline config (``--set key=value`` overrides, dotted for
nested keys, values parsed as YAML) on the first ``--images`` UTKFace faces packed at ``--resolution``, scoring
FID every ``--fid-every-steps`` steps with ``--fid-samples`` generated faces against the cached Inception features
of ``--real`` distinct training faces (``facegen.train.fid_tracker.TrainingFID``: evaluation time is not counted as
training time). Stops at the first evaluation past ``--minutes``. Prints one JSON line per point, then a table, and
writes ``fid_curve.png``, ``points.json`` and ``samples_<minutes>.png`` (64 faces, fixed latents) to ``--out``.
FID from fewer than 10k samples is biased upward: compare runs at the same ``--fid-samples``.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import yaml

ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/utkface/UTKFace.zip"


class _TimeBudgetReached(Exception):
    """Raised by the monitor at the first FID point past the budget (the loop has no wall-clock stop of its own)."""


def _training_config(path: Path, overrides: list[str]) -> dict:
    values = yaml.safe_load(path.read_text())["steps"]["train_gan"]["parameters"]["training"]
    for item in overrides:
        key, _, raw = item.partition("=")
        *parents, leaf = key.split(".")
        node = values
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(raw)
    return values


def _real_features(images, weights: Path, device, cache: Path | None):
    """The real side once: from ``cache`` when it holds these faces' features, else extracted (and cached)."""
    from facegen.metrics.features import RealFeatures, RealFeaturesMismatch, dataset_hash, file_sha256

    if cache is not None and cache.is_file():
        try:
            return RealFeatures.load(
                cache,
                dataset_hash=dataset_hash(images),
                resolution=int(images.shape[-1]),
                weights_sha256=file_sha256(weights),
            )
        except RealFeaturesMismatch as mismatch:
            print(f"real-feature cache {cache} not used: {mismatch}", flush=True)
    real = RealFeatures.from_images(images, weights_path=weights, device=device, progress=True)
    if cache is not None:
        real.save(cache)
    return real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="pipeline config with steps.train_gan ... training")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value (dotted keys)")
    parser.add_argument("--source", type=Path, default=ZIP)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--fid-every-steps", type=int, default=1000)
    parser.add_argument("--fid-samples", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=20_000, help="distinct training faces behind the real statistics")
    parser.add_argument(
        "--real-cache",
        type=Path,
        default=None,
        help="RealFeatures .npz: loaded when it matches (data, resolution, weights), else written",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda; overrides the config's device")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image
    from torchvision.utils import make_grid

    from facegen.data.packing import pack_images
    from facegen.metrics.features import unique_images
    from facegen.metrics.inception_weights import ensure_inception_weights
    from facegen.models.sampling import base_seeds, faces_from_seeds
    from facegen.train.config import TrainingConfig
    from facegen.train.fid_tracker import TrainingFID, plot_fid_curve
    from facegen.train.loop import train_gan

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    values = _training_config(args.config, args.overrides)
    values.update(fid_every_steps=args.fid_every_steps, epochs=10_000, checkpoint_every_steps=0)
    if args.device:
        values["device"] = args.device
    config = TrainingConfig.from_dict(values)
    archive = str(args.source.resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[: args.images]
    packed = pack_images(
        pd.DataFrame({"uri": [f"zip://{archive}!/{m}" for m in members]}), resolution=args.resolution, progress=False
    )
    device = config.resolve_device()
    weights = ensure_inception_weights()
    real_images = unique_images(packed)[: args.real]
    started = time.perf_counter()
    real = _real_features(real_images, weights, device, args.real_cache)
    print(json.dumps({"real_features": real.count, "seconds": round(time.perf_counter() - started, 1)}), flush=True)

    tracker = TrainingFID(real, weights, num_samples=args.fid_samples, seed=123)
    latest_grid: dict[str, np.ndarray] = {}

    def fid_fn(generator: torch.nn.Module) -> float:
        fid = tracker(generator)
        faces = faces_from_seeds(generator, base_seeds(7, 64), device=device)  # the same 64 faces at every point
        latest_grid["faces"] = make_grid(torch.from_numpy(faces), nrow=8, padding=1).permute(1, 2, 0).numpy()
        point = tracker.points[-1]
        Image.fromarray(latest_grid["faces"]).save(args.out / f"samples_{point['training_minutes']:05.1f}min.png")
        print(json.dumps({k: round(v, 3) for k, v in point.items()}), flush=True)
        return fid

    class StopAtBudget:
        def on_step(self, step: int, metrics: dict[str, float]) -> None:
            if "fid" in metrics and tracker.points[-1]["training_minutes"] >= args.minutes:
                raise _TimeBudgetReached(step)

        def on_epoch_end(self, epoch: int, step: int, grid: np.ndarray) -> None:
            pass

    try:
        train_gan(packed, config, monitor=StopAtBudget(), fid_fn=fid_fn, progress=False)
    except _TimeBudgetReached:
        pass
    (args.out / "points.json").write_text(
        json.dumps(
            {
                "config": values,
                "images": len(packed),
                "real": real.count,
                "fid_samples": args.fid_samples,
                "device": str(device),
                "points": tracker.points,
            },
            indent=2,
        )
    )
    plot_fid_curve(tracker.points).savefig(args.out / "fid_curve.png", dpi=110, bbox_inches="tight")
    print(
        f"\n{config.architecture} {args.resolution}px on {device}: FID ({args.fid_samples} samples vs {real.count} "
        f"real) by training minutes"
    )
    for point in tracker.points:
        print(f"  {point['training_minutes']:6.1f} min  FID {point['fid']:8.2f}")


if __name__ == "__main__":
    main()

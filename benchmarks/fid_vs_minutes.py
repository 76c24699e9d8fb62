"""Quality per training time: FID and KID against training minutes, several training setups side by side.

    python benchmarks/fid_vs_minutes.py --resolution 32 --points 3,6,12 --fid-samples 1000 --real 5000 \\
        --threads 2 --out .facegen/benchmarks/fid-minutes32
    python benchmarks/fid_vs_minutes.py --only dcgan --resolution 64 --points 5,10,20 --device cuda \\
        --fid-samples 10000 --real 20000 --out /tmp/fid64

Every contender of ``--contenders`` (benchmarks/fid_vs_minutes.yaml: the pytorch/examples DCGAN loop a user would
copy, and facegen training configs) trains in this process, one after the other, on the same ``--images`` UTKFace
faces at ``--resolution``, and is scored at the same training minutes (``--points``) the same way: FID, KID and
precision/recall of ``--fid-samples`` faces (fixed seeds, through the one seed→face path) against the cached Inception
features of ``--real`` distinct training faces, with a grid of 64 faces at every point. Evaluation time is not
training time (``facegen.train.fid_tracker.TrainingFID``).

Minutes are read from ``--clock``: ``cpu`` (the default on a CPU) is this process's CPU time divided by the torch
threads, i.e. minutes of a machine with that many free cores, so other work on a shared machine does not shorten a
contender's training; ``wall`` is the wall clock (use it on a GPU, where CPU time undercounts). The reference's
DataLoader therefore runs without worker processes, so its JPEG decoding is counted like everyone else's work.
CPU time is only honest if idle threads do not spin: under another job, OpenMP's default busy-wait at every barrier
counts as CPU time without progress (a `make train` DCGAN step took 2.8 s of wall time beside this benchmark and
~0.45 s alone, about three times the CPU seconds per step), so the script sets ``OMP_WAIT_POLICY=PASSIVE`` unless
the environment says otherwise, and every point records the generator steps it was reached at: compare steps too
when the machine was shared.
FID from 1,000 samples is biased upward (compare at equal ``--fid-samples``); KID is unbiased.
Writes ``points.json`` (after every contender), ``curves.png`` and ``<contender>_<minutes>min.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ZIP = ROOT.parent / "shared/data/utkface/UTKFace.zip"
EVERY_STEPS = 5  # facegen contenders look at the clock every 5 generator steps: a point lands ≤ 5 steps late


class _Done(Exception):
    """Raised after a contender's last point: the loop has no time budget of its own."""


def _training_values(entry: dict[str, Any]) -> dict[str, Any]:
    values = yaml.safe_load((ROOT / entry["config"]).read_text())["steps"]["train_gan"]["parameters"]["training"]
    return {**values, **entry.get("set", {})}


def _real_features(images, weights: Path, device, cache: Path):
    """The real side once: from ``cache`` when it holds these faces' features, else extracted (and cached)."""
    from facegen.metrics.features import RealFeatures, RealFeaturesMismatch, dataset_hash, file_sha256

    if cache.is_file():
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
    real.save(cache)
    return real


class _Points:
    """Scores a generator at each of ``minutes`` (once the clock passes it), saves its grid, then stops the run."""

    def __init__(self, name: str, minutes: list[float], tracker, targets, out: Path) -> None:
        self.name, self.minutes, self.tracker, self.targets, self.out = name, minutes, tracker, targets, out

    def due(self) -> bool:
        return self.tracker.training_minutes() >= self.minutes[len(self.tracker.points)]

    def score(self, generator, steps: int) -> float:
        import torch
        from PIL import Image
        from torchvision.utils import make_grid

        from facegen.metrics.samples import evaluation_faces

        fid = self.tracker(generator)
        point = self.tracker.points[-1]
        point["generator_steps"] = steps
        device = next(generator.parameters()).device
        faces = evaluation_faces(generator, 64, seed=7, targets=self.targets, device=device).faces
        grid = make_grid(torch.from_numpy(faces), nrow=8, padding=1).permute(1, 2, 0).numpy()
        Image.fromarray(grid).save(self.out / f"{self.name}_{self.minutes[len(self.tracker.points) - 1]:g}min.png")
        print(json.dumps({"contender": self.name, **{k: round(v, 4) for k, v in point.items()}}), flush=True)
        if len(self.tracker.points) == len(self.minutes):
            raise _Done
        return fid


def _train_facegen(entry, packed, labels, device: str, points: _Points) -> dict[str, Any]:
    from facegen.data.label_encoding import labels_for_model
    from facegen.models.conditioning import label_dims_for
    from facegen.train.config import TrainingConfig
    from facegen.train.loop import train_gan

    values = _training_values(entry)
    values.update(
        epochs=10_000,
        checkpoint_every_steps=0,
        log_every_steps=EVERY_STEPS,
        fid_every_steps=EVERY_STEPS,
        monitor_every_steps=10**9,
        device=device,
    )
    config = TrainingConfig.from_dict(values)
    label_dims = label_dims_for(config.model.get("conditioning"))

    calls = 0

    def fid_fn(generator) -> float:  # every EVERY_STEPS steps; NaN (not a point) until the next point is due
        nonlocal calls
        calls += 1
        return points.score(generator, calls * EVERY_STEPS) if points.due() else math.nan

    try:
        train_gan(
            packed,
            config,
            labels=labels_for_model(labels, label_dims) if label_dims else None,
            fid_fn=fid_fn,
            progress=False,
        )
    except _Done:
        pass
    return values


def _train_reference(folder: Path, resolution: int, device, points: _Points) -> dict[str, Any]:
    """pytorch/examples' dcgan/main.py at 32² or 64²: its netG/netD (one stage fewer at 32²), weights_init, BCELoss,
    Adam(2e-4, β1 0.5), batch 64, ImageFolder + Resize/CenterCrop/Normalize decoded every epoch; no EMA, no labels."""
    import torch
    import torchvision.transforms as T
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    nz, ngf, ndf, stages = 100, 64, 64, int(math.log2(resolution)) - 2  # 4² → resolution in `stages` doublings

    class NetG(nn.Module):
        latent_dim, label_dims = nz, {}

        def __init__(self) -> None:
            super().__init__()
            width = ngf * 2 ** (stages - 1)
            layers = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
            for _ in range(stages - 1):
                layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2)]
                layers += [nn.ReLU(True)]
                width //= 2
            self.main = nn.Sequential(*layers, nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, z, labels=None, truncation_psi: float = 1.0):  # the seed→face path's signature
            return self.main(z.view(len(z), nz, 1, 1))

    def net_d() -> nn.Module:
        width = ndf
        layers = [nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        return nn.Sequential(*layers, nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def weights_init(m: nn.Module) -> None:
        if "Conv" in type(m).__name__:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif "BatchNorm" in type(m).__name__:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    transform = T.Compose(
        [T.Resize(resolution), T.CenterCrop(resolution), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    )
    loader = DataLoader(ImageFolder(str(folder), transform=transform), batch_size=64, shuffle=True, num_workers=0)
    net_g, discriminator = NetG().to(device), net_d().to(device)
    net_g.apply(weights_init)
    discriminator.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    steps = 0
    try:
        while True:
            for real, _ in loader:
                real = real.to(device)
                discriminator.zero_grad()
                ones, zeros = torch.ones(len(real), device=device), torch.zeros(len(real), device=device)
                err_real = criterion(discriminator(real).view(-1), ones)
                err_real.backward()
                fake = net_g(torch.randn(len(real), nz, device=device))
                err_fake = criterion(discriminator(fake.detach()).view(-1), zeros)
                err_fake.backward()
                opt_d.step()
                net_g.zero_grad()
                criterion(discriminator(fake).view(-1), ones).backward()
                opt_g.step()
                steps += 1
                if points.due():
                    points.score(net_g, steps)
                    net_g.train()
    except _Done:
        pass
    return {"reference": "pytorch/examples dcgan/main.py", "batch_size": 64, "nz": nz, "ngf": ngf, "ndf": ndf}


def _plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, result in results.items():
        minutes = [p["training_minutes"] for p in result["points"]]
        axes[0].plot(minutes, [p["fid"] for p in result["points"]], marker="o", label=name)
        axes[1].plot(minutes, [p["kid_mean"] for p in result["points"]], marker="o", label=name)
    for axis, metric in zip(axes, ("FID", "KID")):
        axis.set(xlabel="training minutes (evaluation excluded)", ylabel=metric, yscale="log")
        axis.grid(alpha=0.3, which="both")
    axes[0].legend()
    figure.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contenders", type=Path, default=ROOT / "benchmarks/fid_vs_minutes.yaml")
    parser.add_argument("--only", default=None, help="comma-separated contender names (default: all, file order)")
    parser.add_argument("--images", type=int, default=None, help="first N faces of the zip (default: all)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--points", default="3,6,12", help="training minutes at which every contender is scored")
    parser.add_argument("--fid-samples", type=int, default=1000)
    parser.add_argument("--real", type=int, default=5000, help="distinct training faces behind the real statistics")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None, help="default: cpu on a CPU, else wall")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads its OpenMP runtime, just below

    import pandas as pd
    import torch

    from facegen.data.label_encoding import encode_attribute_labels, label_shares
    from facegen.data.labels import parse_utkface_name
    from facegen.data.packing import pack_images
    from facegen.metrics.features import unique_images
    from facegen.metrics.inception_weights import ensure_inception_weights
    from facegen.train.fid_tracker import TrainingFID

    torch.set_num_threads(args.threads)
    clock_kind = args.clock or ("cpu" if args.device == "cpu" else "wall")
    clock = (lambda: time.process_time() / args.threads) if clock_kind == "cpu" else time.perf_counter
    minutes = [float(m) for m in args.points.split(",")]
    contenders = yaml.safe_load(args.contenders.read_text())
    names = args.only.split(",") if args.only else list(contenders)
    unknown = sorted(set(names) - set(contenders))
    if unknown:
        raise SystemExit(f"unknown contenders {unknown}; {args.contenders} has {list(contenders)}")
    args.out.mkdir(parents=True, exist_ok=True)

    archive = str(ZIP.resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[: args.images]
    plan = pd.DataFrame({"uri": [f"zip://{archive}!/{m}" for m in members]})
    parsed = pd.DataFrame([parse_utkface_name(m) for m in members])
    for name in ("gender", "age_bin", "ethnicity"):
        plan[f"attr_{name}"] = parsed[name]
    labels = encode_attribute_labels(plan)
    started = time.perf_counter()
    packed = pack_images(plan, resolution=args.resolution, progress=True)
    print(json.dumps({"faces": len(packed), "pack_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    weights = ensure_inception_weights()
    real_images = unique_images(packed)[: args.real]
    real = _real_features(real_images, weights, args.device, args.out / f"real_{args.resolution}px_{args.real}.npz")
    targets = label_shares(labels)

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "reference" in names:  # the reference reads JPEG files, as pytorch/examples does
            with zipfile.ZipFile(archive) as handle:
                (Path(tmp) / "faces").mkdir()
                for member in members:
                    (Path(tmp) / "faces" / Path(member).name).write_bytes(handle.read(member))
        for name in names:
            entry = contenders[name]
            tracker = TrainingFID(
                real,
                weights,
                num_samples=args.fid_samples,
                seed=123,
                targets=targets,
                clock=clock,
                fidelity_options={"kid_subset_size": 500, "kid_subsets": 100, "prc_neighborhood": 3},
            )
            points = _Points(name, minutes, tracker, targets, args.out)
            began = time.perf_counter()
            if "reference" in entry:
                setup = _train_reference(Path(tmp), args.resolution, args.device, points)
            else:
                setup = _train_facegen(entry, packed, labels, args.device, points)
            results[name] = {"setup": setup, "points": tracker.points, "wall_seconds": time.perf_counter() - began}
            (args.out / "points.json").write_text(
                json.dumps(
                    {
                        "faces": len(packed),
                        "resolution": args.resolution,
                        "real": real.count,
                        "fid_samples": args.fid_samples,
                        "clock": clock_kind,
                        "threads": args.threads,
                        "device": args.device,
                        "results": results,
                    },
                    indent=2,
                    default=str,
                )
            )
    _plot(results, args.out / "curves.png")
    print(
        f"\n{len(packed)} faces at {args.resolution}², {args.fid_samples} generated vs {real.count} real, "
        f"{clock_kind} clock ({args.threads} threads)"
    )
    print("| contender | " + " | ".join(f"FID @ {m:g} min | KID @ {m:g} | steps @ {m:g}" for m in minutes) + " |")
    print("|---" * (1 + 3 * len(minutes)) + "|")
    for name, result in results.items():
        cells = [f"{p['fid']:.1f} | {p['kid_mean']:.4f} | {p['generator_steps']}" for p in result["points"]]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

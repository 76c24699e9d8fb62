"""Training throughput: facegen's trainer vs the same model on synthetic on-device data, and vs a reference loop.

Three loops train the same DCGAN with the same optimisers and loss for the same number of generator steps:
1. ``synthetic``: one pre-made float batch already on the device, no indexing, no augmentation — the ceiling;
2. ``facegen``: ``facegen.train.loop.train_gan`` on the packed uint8 faces (device-resident, augmented per batch);
3. ``reference``: pytorch/examples' DCGAN style — torchvision ImageFolder + DataLoader decoding the JPEGs each epoch.
Prints images/s and the ratios facegen/synthetic (aim ≥ 0.9) and facegen/reference (aim ≥ 5 on a GPU).
``--compare`` instead runs facegen's loop once per named training config, side by side in one process (e.g. the
embedded default's DCGAN against R3GAN at the CPU widths of docs/architecture.md):

    python benchmarks/train_throughput.py --images 2048 --resolution 64 --batch-size 128 --steps 40
    python benchmarks/train_throughput.py --steps 10 --compare '{"dcgan": {"model": {"latent_dim": 100}},
        "r3gan": {"architecture": "r3gan", "loss": "rpgan", "r1_gamma": 0.5, "r2_gamma": 0.5,
                  "model": {"channel_base": 2048, "channel_max": 64, "blocks_per_stage": 1}}}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from facegen.data.packing import pack_images
from facegen.devices import resolve_device
from facegen.models.losses import discriminator_loss, generator_loss
from facegen.models.registry import build_discriminator, build_generator
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan

ZIP = Path(__file__).resolve().parents[1].parent / "shared/data/utkface/UTKFace.zip"


def extract_faces(count: int, folder: Path, source: Path = ZIP) -> list[Path]:
    """The first ``count`` faces of ``source`` (the shared zip) as JPEG files in an ImageFolder layout (one class)."""
    (folder / "faces").mkdir(parents=True)
    with zipfile.ZipFile(source) as archive:
        members = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[:count]
        for member in members:
            (folder / "faces" / Path(member).name).write_bytes(archive.read(member))
    return sorted((folder / "faces").iterdir())


def gan_step(generator, discriminator, opt_g, opt_d, real: torch.Tensor) -> None:
    """One D step and one G step, the non-saturating loss: the work every loop here shares."""
    z = torch.randn(len(real), generator.latent_dim, device=real.device)
    with torch.no_grad():
        fake = generator(z)
    loss_d = discriminator_loss(discriminator(real), discriminator(fake))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = generator_loss(discriminator(generator(torch.randn_like(z))))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()


def models(resolution: int, device: torch.device):
    generator = build_generator("dcgan", {"resolution": resolution}).to(device)
    discriminator = build_discriminator("dcgan", {"resolution": resolution}).to(device)
    return (
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999)),
        torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999)),
    )


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic_loop(resolution: int, batch: int, steps: int, device: torch.device) -> float:
    generator, discriminator, opt_g, opt_d = models(resolution, device)
    real = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
    gan_step(generator, discriminator, opt_g, opt_d, real)  # warm-up
    synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        gan_step(generator, discriminator, opt_g, opt_d, real)
    synchronise(device)
    return steps * batch / (time.perf_counter() - start)


def reference_loop(folder: Path, resolution: int, batch: int, steps: int, device: torch.device, workers: int) -> float:
    transform = T.Compose(
        [T.Resize(resolution), T.CenterCrop(resolution), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    )
    loader = DataLoader(
        ImageFolder(str(folder), transform=transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    generator, discriminator, opt_g, opt_d = models(resolution, device)
    done, start = 0, None
    while done < steps + 1:
        for real, _ in loader:
            gan_step(generator, discriminator, opt_g, opt_d, real.to(device, non_blocking=True))
            done += 1
            if done == 1:  # first step = warm-up (workers starting, allocations)
                synchronise(device)
                start = time.perf_counter()
            if done == steps + 1:
                break
    synchronise(device)
    return steps * batch / (time.perf_counter() - start)


def facegen_loop(
    packed: np.ndarray, batch: int, steps: int, device: torch.device, training: dict[str, Any] | None = None
) -> float:
    """images/s of ``train_gan`` for about ``steps`` steps; ``training``: TrainingConfig values (architecture, …)."""
    epochs = max(1, -(-steps * batch // len(packed)))
    config = TrainingConfig.from_dict(
        {
            **(training or {}),
            "epochs": epochs,
            "batch_size": batch,
            "device": str(device),
            "log_every_steps": 10**9,
            "monitor_every_steps": 10**9,
            "grid_size": 4,
        }
    )
    result = train_gan(packed, config, progress=False)
    return result.images_seen / result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    parser.add_argument("--compare", type=json.loads, help='JSON {"name": {TrainingConfig values}}: facegen only')
    args = parser.parse_args()
    device = resolve_device()
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_faces(args.images, Path(tmp))
        packed = pack_images(pd.DataFrame({"uri": [str(f) for f in files]}), resolution=args.resolution, progress=False)
        if args.compare:
            print(f"facegen's loop, {args.resolution}×{args.resolution}, batch {args.batch_size}, {args.steps} steps:")
            for name, training in args.compare.items():
                rate = facegen_loop(packed, args.batch_size, args.steps, device, training)
                print(f"  {name:<24} {rate:10.1f} images/s", flush=True)
            return
        rates = {
            "synthetic": synthetic_loop(args.resolution, args.batch_size, args.steps, device),
            "facegen": facegen_loop(packed, args.batch_size, args.steps, device),
            "reference": reference_loop(Path(tmp), args.resolution, args.batch_size, args.steps, device, args.workers),
        }
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {name}; DCGAN {args.resolution}×{args.resolution}, batch {args.batch_size}, "
        f"{args.images} faces, {args.steps} steps"
    )
    for loop, rate in rates.items():
        print(f"  {loop:<10} {rate:10.1f} images/s")
    print(f"  facegen / synthetic = {rates['facegen'] / rates['synthetic']:.2f}  (aim ≥ 0.90)")
    print(f"  facegen / reference = {rates['facegen'] / rates['reference']:.2f}  (aim ≥ 5 on a GPU)")


if __name__ == "__main__":
    main()

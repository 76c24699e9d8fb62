"""Shard streaming (issue #15): pack the shared faces into shards, stream them, and the memory each stage holds.

For each case (a resolution and a number of faces, the first N entries of the shared zip), stages run one by one,
each in a fresh child process (this script with ``--stage``), so its peak RSS (``ru_maxrss``) is its own:
- ``pack``: ``write_shards`` of the case's plan (labels from the UTKFace names, weight 1), shards of about
  ``--shard-mb`` MB (at most 1,000 faces: the library's default), faces stored as ``--image-format`` (png: small,
  decoded while streaming; npy: raw pixels, bigger, decoded by a copy);
- ``memory``: ``ShardSet.to_array()`` into today's ``DataFeed``, then one epoch of batches — only where the decoded
  set is ≤ ``--memory-max-gib`` (it is what grows with the set);
- ``stream``: one epoch of ``StreamingFeed`` batches (whole shards decoded ahead in threads);
- ``compare`` (at the first case's resolution, 64 by default): both feeds in one process, alternating rounds, so
  their images/s ratio (streamed / in-memory) shares the machine's load; feed-only, and with one DCGAN D+G step per
  batch (benchmarks/train_throughput.py's step), which is what training sees.
Epochs are drawn as train_gan draws them (``epoch_order`` then the feed's ``epoch_order`` / ``begin``), batch 64,
each stopped at ``--seconds``. Results: a printed table and results.json under ``--out``.

    .venv/bin/python benchmarks/shard_stream.py                      # CPU, the figures in docs/benchmarks.md
    python3 benchmarks/shard_stream.py --device cuda --zip FACES.zip # the device (see docs/benchmarks.md)

Imports only torch, numpy and facegen's library (plus train_throughput's DCGAN step for ``compare``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facegen.data.labels import parse_utkface_name
from facegen.data.shards import IMAGE_FORMATS, ShardSet, write_shards
from facegen.data.sources import open_source
from facegen.devices import resolve_device
from facegen.train.data_feed import DataFeed, StreamingFeed
from facegen.train.loop import epoch_order

ROOT = Path(__file__).resolve().parents[1]
ZIP = ROOT.parent / "shared/data/utkface/UTKFace.zip"
OUT = ROOT / ".facegen/benchmarks/shard-stream"
STAGES = ("pack", "memory", "stream", "compare")
MAX_IMAGES_PER_SHARD = 1000  # write_shards' default: small faces still make many shards
PROBE_FACES = 8
MIB, GIB = 1 << 20, 1 << 30


def plan_of(zip_path: Path, faces: int | None) -> pd.DataFrame:
    """The first ``faces`` faces of the zip as a sampling plan: labels parsed from the names, every weight 1."""
    uris = open_source(str(zip_path)).list_entries()[:faces]
    labels = pd.DataFrame([parse_utkface_name(uri) for uri in uris])[["gender", "age_bin", "ethnicity"]]
    return labels.add_prefix("attr_").assign(uri=uris, sample_weight=1.0)


def images_per_shard(zip_path: Path, resolution: int, shard_mb: float, image_format: str) -> int:
    """Faces per shard for ~``shard_mb`` MB shards, from the size of the first faces as write_shards stores them."""
    with tempfile.TemporaryDirectory(prefix="facegen-probe-") as scratch:
        probe = write_shards(
            plan_of(zip_path, PROBE_FACES), scratch, resolution=resolution, image_format=image_format, progress=False
        )
        face_bytes = probe.shards[0].bytes / PROBE_FACES
    return int(np.clip(shard_mb * 1e6 // face_bytes, 1, MAX_IMAGES_PER_SHARD))


def peak_rss() -> int:
    """This process's peak resident set so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_epoch(
    feed: DataFeed | StreamingFeed,
    rows: int,
    batch: int,
    device: torch.device,
    *,
    seconds: float,
    max_batches: int | None = None,
    step: Callable[[torch.Tensor], None] | None = None,
) -> dict[str, Any]:
    """One epoch's batches, drawn as train_gan draws them, until the epoch, ``seconds`` or ``max_batches`` ends."""
    order = feed.epoch_order(epoch_order(rows, 0, 0), 0).to(device)
    started = time.perf_counter()
    feed.begin(order, 0)
    images, batches = 0, 0
    for start in range(0, rows - batch + 1, batch):
        real, _labels = feed.batch(order[start : start + batch])
        if step is not None:
            step(real)
        images, batches = images + len(real), batches + 1
        if time.perf_counter() - started > seconds or batches == max_batches:
            break
    synchronise(device)
    elapsed = time.perf_counter() - started
    return {
        "images": images,
        "seconds": elapsed,
        "images_per_s": images / elapsed,
        "whole_epoch": batches == rows // batch,
    }


def dcgan_step(resolution: int, device: torch.device) -> Callable[[torch.Tensor], None]:
    """One D and one G step of train_throughput's DCGAN on a uint8 batch: the work a training step adds."""
    from train_throughput import gan_step, models  # this script's folder

    from facegen.data.augment import to_unit_range

    generator, discriminator, opt_g, opt_d = models(resolution, device)
    return lambda real: gan_step(generator, discriminator, opt_g, opt_d, to_unit_range(real))


def stage(args: argparse.Namespace) -> dict[str, Any]:
    """One stage of one case, in this (fresh) process."""
    device = resolve_device(args.device)
    result: dict[str, Any] = {"rss_at_start_mb": peak_rss() / MIB}
    if args.stage == "pack":
        plan = plan_of(args.zip, args.faces)
        shutil.rmtree(args.shards, ignore_errors=True)
        started = time.perf_counter()
        shards = write_shards(
            plan,
            str(args.shards),
            resolution=args.resolution,
            images_per_shard=args.images_per_shard,
            image_format=args.image_format,
            workers=args.workers,
            progress=False,
        )
        elapsed = time.perf_counter() - started
        sizes = [info.bytes for info in shards.shards]
        result |= {
            "seconds": elapsed,
            "images_per_s": len(plan) / elapsed,
            "shards": len(sizes),
            "shard_mb": float(np.mean(sizes)) / 1e6,
            "disk_mb": sum(sizes) / 1e6,
        }
    else:
        shards = ShardSet(str(args.shards))
        result["decoded_mb"] = shards.nbytes / 1e6
        run = {"seconds": args.seconds}
        if args.stage in ("memory", "compare"):
            started = time.perf_counter()
            memory = DataFeed(shards.to_array(workers=args.workers, progress=False), shards.labels, device, "auto")
            result["to_array_seconds"] = time.perf_counter() - started
        if args.stage in ("stream", "compare"):
            stream = StreamingFeed(shards, shards.labels, device, workers=args.workers)
        if args.stage == "memory":
            result |= run_epoch(memory, len(shards), args.batch_size, device, **run)
        elif args.stage == "stream":
            result |= run_epoch(stream, len(shards), args.batch_size, device, **run)
            result["shards_read"] = stream.shards_read
        else:
            result |= compare({"memory": memory, "stream": stream}, len(shards), args, device)
    return result | {"peak_rss_mb": peak_rss() / MIB}


def compare(
    feeds: dict[str, DataFeed | StreamingFeed], rows: int, args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, float]]:
    """Both feeds in turn for ``--rounds`` rounds, feed-only then with a DCGAN step: images/s each and the ratio."""
    variants: dict[str, tuple[Callable[[torch.Tensor], None] | None, int | None]] = {"feed_only": (None, None)}
    if args.train_steps:
        step = dcgan_step(args.resolution, device)
        step(feeds["memory"].batch(torch.arange(args.batch_size, device=device))[0])  # warm-up: allocations
        variants["with_dcgan_step"] = (step, args.train_steps)
    result = {}
    for variant, (step, max_batches) in variants.items():
        totals = {name: [0, 0.0] for name in feeds}
        for _ in range(args.rounds):
            for name, feed in feeds.items():
                epoch = run_epoch(
                    feed, rows, args.batch_size, device, seconds=args.seconds, max_batches=max_batches, step=step
                )
                totals[name][0] += epoch["images"]
                totals[name][1] += epoch["seconds"]
        rates = {name: images / seconds for name, (images, seconds) in totals.items()}
        result[variant] = {f"{name}_images_per_s": rate for name, rate in rates.items()}
        result[variant] |= {"ratio": rates["stream"] / rates["memory"], "images_per_feed": totals["stream"][0]}
    return result


def child(args: argparse.Namespace, stage_name: str, case: dict[str, Any], result: Path) -> dict[str, Any]:
    """Run one stage in a fresh interpreter (spawned, not forked: nothing of this process's memory comes along)."""
    command = [sys.executable, __file__, "--stage", stage_name, "--result", str(result)]
    command += ["--resolution", str(case["resolution"]), "--faces", str(case["faces"]), "--shards", str(case["shards"])]
    command += ["--images-per-shard", str(case["images_per_shard"]), "--zip", str(args.zip), "--device", args.device]
    command += ["--batch-size", str(args.batch_size), "--seconds", str(args.seconds), "--workers", str(args.workers)]
    command += [
        "--rounds",
        str(args.rounds),
        "--train-steps",
        str(args.train_steps),
        "--image-format",
        args.image_format,
    ]
    subprocess.run(command, check=True)
    return json.loads(result.read_text())


def parse_case(text: str, total: int) -> tuple[int, int, int | None]:
    """``RESOLUTION:FACES[:IMAGES_PER_SHARD]`` (FACES ``all``: every face of the zip; no third part: ``--shard-mb``)."""
    try:
        resolution, faces, *per_shard = text.split(":")
        if len(per_shard) > 1:
            raise ValueError(text)
        count = total if faces == "all" else min(int(faces), total)
        return int(resolution), count, int(per_shard[0]) if per_shard else None
    except ValueError:
        raise ValueError(
            f"--cases: a case is RESOLUTION:FACES[:IMAGES_PER_SHARD] (e.g. 1024:300, 64:all, 1024:1000:32), got {text!r}"
        ) from None


def table(cases: list[dict[str, Any]]) -> str:
    """The printed summary: one line per case, then the side-by-side ratio."""
    head = (
        f"{'side':>5} {'faces':>6} {'shards':>6} {'faces/shard':>11} {'MB/shard':>8} {'decoded GB':>10} | {'pack s':>7} {'pack RSS':>8} | "
        f"{'memory RSS':>10} {'img/s':>8} | {'stream RSS':>10} {'img/s':>8} {'epoch':>5}"
    )
    lines = [head, "-" * len(head)]
    for case in cases:
        pack, memory, stream = (case["stages"].get(name) for name in ("pack", "memory", "stream"))
        memory_cells = (
            f"{memory['peak_rss_mb']:>7.0f} MB {memory['images_per_s']:>8.0f}" if memory else f"{'—':>10} {'—':>8}"
        )
        lines.append(
            f"{case['resolution']:>5} {case['faces']:>6} {pack['shards']:>6} {case['images_per_shard']:>11} "
            f"{pack['shard_mb']:>8.1f} "
            f"{stream['decoded_mb'] / 1e3:>10.2f} | {pack['seconds']:>7.1f} {pack['peak_rss_mb']:>5.0f} MB | "
            f"{memory_cells} | {stream['peak_rss_mb']:>7.0f} MB {stream['images_per_s']:>8.0f} "
            f"{'yes' if stream['whole_epoch'] else 'cap':>5}"
        )
    for case in cases:
        if "compare" in case["stages"]:
            for variant, figures in case["stages"]["compare"].items():
                if isinstance(figures, dict) and "ratio" in figures:
                    lines.append(
                        f"{case['resolution']}², {variant}, same process: stream {figures['stream_images_per_s']:.0f}"
                        f" vs memory {figures['memory_images_per_s']:.0f} images/s, ratio {figures['ratio']:.3f}"
                        " (aim ≥ 0.9)"
                    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["64:all", "256:4000", "1024:1000", "1024:2000", "1024:1000:32"])
    parser.add_argument("--zip", type=Path, default=ZIP, help="faces (UTKFace names); the first FACES of it per case")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto (facegen.devices.resolve_device)")
    parser.add_argument("--shard-mb", type=float, default=100.0, help="target shard size (≤ 1,000 faces a shard)")
    parser.add_argument("--image-format", choices=IMAGE_FORMATS, default="png", help="how shards store faces")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120.0, help="time cap of one epoch")
    parser.add_argument("--workers", type=int, default=2, help="threads that pack / decode shards")
    parser.add_argument("--rounds", type=int, default=2, help="compare: alternations of the two feeds")
    parser.add_argument("--train-steps", type=int, default=40, help="compare: DCGAN steps per feed per round; 0: none")
    parser.add_argument("--memory-max-gib", type=float, default=2.0, help="memory stage only up to this decoded size")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # the children's arguments
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--faces", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images-per-shard", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    resolve_device(args.device)  # a bad --device fails here, not in the first child
    if args.stage:
        args.result.write_text(json.dumps(stage(args)))
        return
    if not args.zip.is_file():
        parser.error(f"--zip {args.zip}: no such file")
    total = len(open_source(str(args.zip)).list_entries())
    try:
        specs = [parse_case(text, total) for text in args.cases]
    except ValueError as error:
        parser.error(str(error))
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "torch": torch.__version__,
        "arguments": {key: str(value) for key, value in vars(args).items() if key not in ("stage", "result")},
        "cases": [],
    }
    for number, (resolution, faces, per_shard) in enumerate(specs):
        per_shard = per_shard or images_per_shard(args.zip, resolution, args.shard_mb, args.image_format)
        case = {
            "resolution": resolution,
            "faces": faces,
            "of_faces": total,
            "images_per_shard": per_shard,
            "shards": args.out / "shards" / f"r{resolution}-n{faces}-k{per_shard}",
            "stages": {},
        }
        decoded_gib = faces * 3 * resolution**2 / GIB
        names = ["pack", *(["memory"] if decoded_gib <= args.memory_max_gib else []), "stream"]
        names += ["compare"] if number == 0 else []
        for name in names:
            print(f"{resolution}² × {faces} faces: {name} …", file=sys.stderr, flush=True)
            case["stages"][name] = child(args, name, case, args.out / f"stage-{name}.json")
        if "memory" not in names:
            case["stages"]["memory_skipped"] = f"decoded set {decoded_gib:.2f} GiB > --memory-max-gib"
        shutil.rmtree(case["shards"])
        report["cases"].append({**case, "shards": str(case["shards"])})
        (args.out / "results.json").write_text(json.dumps(report, indent=1))
    summary = table(report["cases"])
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    (args.out / "table.txt").write_text(summary + "\n")
    print(
        f"device {args.device}; {report['machine']}; batch {args.batch_size}; faces: the zip's first N of {total};"
        f" shards store {args.image_format}"
    )
    print(summary)


if __name__ == "__main__":
    main()

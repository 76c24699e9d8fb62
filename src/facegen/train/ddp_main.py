"""Multi-GPU training entry point for torchrun (one process per GPU; gloo on CPUs for tests).

    torchrun --nproc_per_node=8 -m facegen.train.ddp_main \\
        --dataset /data/packed.npy --config /config/train.yaml --out /out [--labels /data/labels.npy] [--resume]

``--config`` is the ``training:`` block of a pipeline config (TrainingConfig fields). Rank 0 writes the generator
bundle to OUT/generator, the checkpoint to OUT/checkpoint/last.pt (resumable) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch.distributed as dist
import yaml

from facegen.models.bundle import save_generator_bundle
from facegen.train.config import TrainingConfig
from facegen.train.loop import train_gan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="packed uint8 N×3×R×R .npy")
    parser.add_argument("--labels", type=Path, help="int N×A .npy of attribute indices (conditional models)")
    parser.add_argument("--config", type=Path, required=True, help="YAML of TrainingConfig fields")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint/last.pt if present")
    args = parser.parse_args(argv)

    config = TrainingConfig.from_dict(yaml.safe_load(args.config.read_text()) or {})
    images = np.load(args.dataset)
    labels = np.load(args.labels) if args.labels else None
    result = train_gan(
        images, config, labels=labels, checkpoint_path=args.out / "checkpoint" / "last.pt", resume=args.resume
    )
    if not dist.is_initialized() or dist.get_rank() == 0:
        save_generator_bundle(args.out / "generator", config.architecture, result.model_config, result.generator)
        summary = {
            "generator_steps": result.generator_steps,
            "images_seen": result.images_seen,
            "seconds": result.seconds,
            "rollbacks": result.rollbacks,
            "resumed_from_step": result.resumed_from_step,
            "replica_digests": result.replica_digests,
            "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        }
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

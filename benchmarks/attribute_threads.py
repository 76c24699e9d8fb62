"""Benchmark: training `facegen-attributes` on one torch thread against two, side by side in one process.

    python benchmarks/attribute_threads.py --faces 2000 --rounds 2

configs/attributes.yaml once forced ``num_threads: 1`` (measured on a loaded machine); the first `make train`
spends most of its one-time minutes there. This script trains the model of that config (its ``training`` settings,
fewer epochs) on the same packed faces with 1 and with 2 threads, alternating (1, 2, 1, 2, …) so drift in the
machine's load falls on both, and prints the seconds of each round and the ratio of the medians (2 threads /
1 thread; below 1 means two threads are faster).
Run it on an otherwise idle machine: it measures what the cores give, not what other work leaves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zipfile
from pathlib import Path

import pandas as pd
import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="../shared/data/utkface/UTKFace.zip")
    parser.add_argument("--config", default="configs/attributes.yaml")
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per round (after the frozen one)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per thread count")
    args = parser.parse_args()

    from facegen.attributes_model.data import encode_labels, pack_faces
    from facegen.attributes_model.training import AttributeTrainingConfig, train_attribute_model
    from facegen.data.labels import parse_utkface_name

    steps = yaml.safe_load(Path(args.config).read_text())["steps"]
    settings = dict(steps["train_attribute_model"]["parameters"]["training"], epochs=args.epochs)
    archive = str(Path(args.source).resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[: args.faces]
    frame = pd.DataFrame([parse_utkface_name(Path(member).name) for member in members])
    labels = encode_labels(frame)
    images = pack_faces([f"zip://{archive}!/{m}" for m in members], settings["input_size"], workers=2)
    cut = len(images) * 9 // 10
    train = (images[:cut], {name: column[:cut] for name, column in labels.items()})
    holdout = (images[cut:], {name: column[cut:] for name, column in labels.items()})

    seconds: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for threads in (1, 2):
            config = AttributeTrainingConfig.from_dict(dict(settings, num_threads=threads))
            start = time.perf_counter()
            train_attribute_model(*train, *holdout, config)
            seconds[threads].append(round(time.perf_counter() - start, 1))
            print(json.dumps({"threads": threads, "seconds": seconds[threads][-1]}), flush=True)
    ratio = statistics.median(seconds[2]) / statistics.median(seconds[1])
    print(json.dumps({"faces": len(images), "epochs": args.epochs, "seconds": seconds, "ratio_2_over_1": ratio}))


if __name__ == "__main__":
    main()

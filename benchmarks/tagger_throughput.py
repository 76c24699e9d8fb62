"""Benchmark: `facegen-attributes` inference throughput on the CPU (faces/s), tensors and files.

    nice -n 10 python benchmarks/tagger_throughput.py --faces 2000 --threads 2 [--bundle DIR | --registered]

Measures (1) tensor inference on packed uint8 64×64 faces in batches of --batch (what scoring generated faces
costs), (2) the whole file path: read from the shared zip, decode, crop, resize, infer (what tag_attributes
costs), and, as the baseline measured in the same run, (3) tensor inference one face at a time. Throughput does
not depend on the weights, so without --bundle / --registered an untrained network of the same architecture is
timed. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

from facegen.registry.names import ATTRIBUTES_ALIAS, ATTRIBUTES_MODEL_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="../shared/data/utkface/UTKFace.zip")
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads for the file path")
    parser.add_argument("--bundle", default=None)
    parser.add_argument(
        "--registered", action="store_true", help=f"load {ATTRIBUTES_MODEL_NAME}@{ATTRIBUTES_ALIAS} from MLflow"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from facegen.attributes_model.data import pack_faces
    from facegen.attributes_model.inference import AttributeClassifier
    from facegen.attributes_model.network import AttributeNet

    if args.registered:
        from facegen.attributes_model.registry import load_attribute_classifier
        from facegen.registry.tracking import mlflow_client

        classifier, version = load_attribute_classifier(mlflow_client())
        weights = f"{version.name}@{ATTRIBUTES_ALIAS} (version {version.version})"
    elif args.bundle:
        classifier, weights = AttributeClassifier.from_bundle(args.bundle), args.bundle
    else:
        classifier, weights = AttributeClassifier(AttributeNet(pretrained=False), {"input_size": 64}), "untrained"

    archive = str(Path(args.source).resolve())
    with zipfile.ZipFile(archive) as handle:
        members = sorted(n for n in handle.namelist() if n.endswith(".jpg"))[: args.faces]
    uris = [f"zip://{archive}!/{m}" for m in members]

    start = time.perf_counter()
    packed = pack_faces(uris, classifier.input_size, workers=args.workers)
    pack_s = time.perf_counter() - start
    classifier.predict(packed[:64])  # warm-up

    start = time.perf_counter()
    classifier.predict(packed, batch_size=args.batch)
    tensor_s = time.perf_counter() - start

    start = time.perf_counter()
    classifier.predict_files(uris, workers=args.workers, batch_size=args.batch)
    files_s = time.perf_counter() - start

    single = packed[: min(200, len(packed))]
    start = time.perf_counter()
    for i in range(len(single)):
        classifier.predict(single[i : i + 1])
    single_s = time.perf_counter() - start

    n = len(uris)
    report = {
        "weights": weights,
        "faces": n,
        "input_size": classifier.input_size,
        "threads": args.threads,
        "tensor_faces_per_s": round(n / tensor_s, 1),
        "files_faces_per_s": round(n / files_s, 1),
        "decode_resize_only_faces_per_s": round(n / pack_s, 1),
        "baseline_batch1_faces_per_s": round(len(single) / single_s, 1),
        "tensor_speedup_vs_batch1": round((n / tensor_s) / (len(single) / single_s), 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

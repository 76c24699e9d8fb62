"""Benchmark: ingest (list, sha256, header) + quality filter (full decode, size, grayscale, blur, pHash, Haar face
check, exact and near duplicates) over a whole source, on every core given.

    nice -n 10 python benchmarks/ingest_filter.py --source ../shared/data/utkface/UTKFace.zip --workers 2

Prints images/s per stage and for the whole filter, plus the quarantine counts, and compares with a baseline
measured in the same run: the same work on one worker. Writes the assessed manifest to --out (parquet) when
given, so the numbers in docs/data.md can be traced.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="../shared/data/utkface/UTKFace.zip")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-face-check", action="store_true")
    parser.add_argument("--baseline", action="store_true", help="also time the same work with one worker")
    parser.add_argument("--out", default=None, help="write the assessed manifest here (parquet)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # parallelism comes from our workers, not from OpenCV's own pool

    from facegen.data.faces import FaceCheck
    from facegen.data.manifest import build_manifest
    from facegen.data.quality import QualityConfig, assess_quality, quarantine_summary

    config = QualityConfig(face_check=None if args.no_face_check else FaceCheck())

    def run(workers: int) -> dict:
        cpu0, start = time.process_time(), time.perf_counter()
        manifest = build_manifest(args.source, max_images=args.max_images, workers=workers, progress=False)
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        assessed = assess_quality(manifest, config=config, workers=workers, progress=False)
        quality_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0  # all threads of this process: what the work costs without sharing
        n = len(manifest)
        return {
            "workers": workers,
            "images": n,
            "ingest_s": round(ingest_s, 2),
            "quality_s": round(quality_s, 2),
            "ingest_images_per_s": round(n / ingest_s, 1),
            "quality_images_per_s": round(n / quality_s, 1),
            "total_images_per_s": round(n / (ingest_s + quality_s), 1),
            "cpu_s": round(cpu_s, 1),
            "images_per_cpu_s": round(n / cpu_s, 1),
            "load_avg_1min_after": round(os.getloadavg()[0], 2),
            "kept": int(assessed["status"].eq("kept").sum()),
            "grayscale_flagged": int(assessed["grayscale"].eq(True).sum()),
            "quarantined": quarantine_summary(assessed),
            "_assessed": assessed,
        }

    result = run(args.workers)
    assessed = result.pop("_assessed")
    report = {
        "cpu_count": os.cpu_count(),
        "face_check": not args.no_face_check,
        "run": result,
        "cpu_bound_estimate_images_per_s": round(result["images_per_cpu_s"] * args.workers, 1),
    }
    if args.baseline:
        baseline = run(1)
        baseline.pop("_assessed")
        report["one_worker"] = baseline
        report["speedup_vs_one_worker"] = round(result["total_images_per_s"] / baseline["total_images_per_s"], 2)
    if args.out:
        assessed.to_parquet(args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

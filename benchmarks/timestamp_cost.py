"""What an RFC 3161 time-stamp costs a served face: bytes and CPU-side milliseconds, with and without, side by side.

    python benchmarks/timestamp_cost.py --faces 50

Marks the same 256² JPEG face ``--faces`` times through ``facegen.provenance.marking.mark_face`` with one signer
without a time-stamp authority and one asking OpenSSL's TSA on 127.0.0.1 (tests/tsa_server.py, the tests' TSA), and
prints the median size and the mean time per face of each and their difference. A public TSA adds a network round
trip on top of the loopback figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tsa_server

from facegen.provenance.c2pa_manifest import FaceProvenance, ManifestSigner  # noqa: E402
from facegen.provenance.credentials import SigningCredentials, write_local_credentials  # noqa: E402
from facegen.provenance.marking import mark_face  # noqa: E402
from tests.tsa_server import running_tsa  # noqa: E402

PROVENANCE = FaceProvenance("facegen-generator", "1", "0123456789abcdef0123456789abcdef", seed=7, truncation=1.0)


def _measure(signer: ManifestSigner, face: np.ndarray, faces: int) -> tuple[int, float]:
    mark_face(face, PROVENANCE, signer, size=256, fmt="jpeg")  # warm-up: the signer is built on first use
    start = time.perf_counter()
    sizes = [len(mark_face(face, PROVENANCE, signer, size=256, fmt="jpeg")) for _ in range(faces)]
    return int(np.median(sizes)), (time.perf_counter() - start) / faces * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=50)
    args = parser.parse_args()
    face = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    work = Path(tempfile.mkdtemp(prefix="facegen-tsa-"))
    credentials = SigningCredentials.load(write_local_credentials(work / "signer"))
    with running_tsa(work / "tsa") as tsa:
        plain = _measure(ManifestSigner(credentials), face, args.faces)
        stamped = _measure(ManifestSigner(credentials, tsa.url), face, args.faces)
    print(f"{'':14}{'bytes/face':>12}{'ms/face':>10}")
    print(f"{'no time-stamp':14}{plain[0]:>12,}{plain[1]:>10.2f}")
    print(f"{'time-stamped':14}{stamped[0]:>12,}{stamped[1]:>10.2f}")
    print(f"{'difference':14}{stamped[0] - plain[0]:>+12,}{stamped[1] - plain[1]:>+10.2f}")


if __name__ == "__main__":
    main()

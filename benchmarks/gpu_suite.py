"""GPU suite (issue #13): trainer throughput, FID against training minutes and 1024² serving latency, ≤ 8 device minutes.

The device machine has its own torch (2.11) and numpy/PIL/pandas/scipy/torchvision/yaml/tqdm/opencv, but none of
facegen's other dependencies, and takes at most 64 MiB (working tree included) per call. Hence three commands:

  prepare   (here)    the Inception weights, the first ``--faces`` faces of the shared zip and wheels of the two
                      pure-Python libraries the metrics and packing import that the device lacks (torch-fidelity,
                      ImageHash) go into one .tar.gz, cut into pieces .facegen/carry/p0, p1, … (ignored folders),
                      each fitting one call next to the working tree; prints the `run` calls to paste.
  assemble  (device)  the pieces, checked against their sha256, back into .facegen/gpu/.
  run       (device)  (a) images/s of DCGAN training at 64² on one synthetic on-device batch, through facegen's loop
                      and through a pytorch/examples-style DataLoader loop (benchmarks/train_throughput.py's loops);
                      (b) FID of ``--fid-samples`` faces against the cached features of ``--real`` real faces at
                      ``--points`` training minutes of the best config at 64² (``--config``'s training, ``--set`` on
                      top), through facegen.train.loop.train_gan and facegen.train.fid_tracker.TrainingFID;
                      (c) p50/p95 ms of one face at 1024² through faces_from_seeds (untrained weights of the
                      config's architecture) and of its JPEG encoding. Each part has its own time budget inside
                      ``--budget``; the JSON is rewritten after every part, so a part that fails or runs out of time
                      leaves the others' figures.

benchmarks/gpu_suite.sh wraps them (PYTHONPATH=src, the wheels installed into a temporary site, a hard timeout);
its ``smoke`` runs all three on this CPU at toy sizes (``run --smoke``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".facegen/carry"  # ignored (.gitignore: .facegen/): travels only where a call names it in carry
DATA = ROOT / ".facegen/gpu"
MIB = 1 << 20
CALL_LIMIT = 64 * MIB  # what one call carries, working tree included (device README)
TREE_MARGIN = 2 * MIB  # room for the working tree to grow between prepare and the calls
PAYLOAD, MANIFEST = "payload.tar.gz.part", "manifest.json"
WEIGHTS, FACES, WHEELS = "inception.pth", "faces.zip", "wheels"
#: Distributions the library imports on the suite's path that the device's image lacks; pure Python, and what they
#: need themselves (numpy, pillow, pyyaml, scipy, torchvision, tqdm) is there. Versions: those of this checkout's .venv.
#: webdataset (and its braceexpand): facegen.train.loop imports facegen.data.shards, and so does shard_stream.py.
CARRIED = {
    "torch-fidelity": "torch_fidelity",
    "ImageHash": "imagehash",
    "webdataset": "webdataset",
    "braceexpand": "braceexpand",
}
#: facegen dependencies missing from the device's image (device KINDS.md, package list of 2026-11-17): the suite
#: must not import them (an ImportError there, a wasted lease).
ABSENT_ON_DEVICE = (
    "zenml",
    "mlflow",
    "great_expectations",
    "evidently",
    "boto3",
    "s3fs",
    "kubernetes",
    "fastapi",
    "uvicorn",
    "c2pa",
    "cryptography",
    "rapidjson",
)
PARTS = ("throughput", "fid_vs_minutes", "latency")
EVERY_STEPS = 10  # train_gan calls the FID schedule every 10 generator steps: a point lands ≤ 10 steps late
#: run --smoke: the same code at toy sizes on this CPU (≤ 3 minutes on 2 shared cores).
SMOKE = {
    "device": "cpu",
    "resolution": 32,
    "throughput_faces": 16,
    "batch_size": 8,
    "steps": 2,
    "workers": 0,
    "real": 16,
    "fid_samples": 16,
    "points": "0.01",  # the first look (step 10) takes it
    "set": {
        "batch_size": 8,
        "precision": "fp32",
        "channels_last": False,
        "model": {"latent_dim": 32, "w_dim": 32, "channel_base": 256, "channel_max": 16},
    },
    "latency_resolution": 64,
    "latency_repeats": 3,
    "budget": 200.0,
    "throughput_budget": 45.0,
    "fid_budget": 120.0,
    "latency_budget": 30.0,
}


def sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def face_members(archive: zipfile.ZipFile, count: int | None = None) -> list[str]:
    """The first ``count`` JPEG members in name order: the faces every part uses (train_throughput's order too)."""
    return sorted(n for n in archive.namelist() if n.endswith(".jpg"))[:count]


# -- prepare (here) ------------------------------------------------------------------------------------------------
def tree_bytes() -> int:
    """Bytes of what every call sends anyway: tracked files and untracked files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return sum(
        (ROOT / os.fsdecode(name)).stat().st_size for name in listed if name and (ROOT / os.fsdecode(name)).is_file()
    )


def carried_wheels(folder: Path) -> list[Path]:
    """Wheels of ``CARRIED`` at this environment's versions, downloaded from PyPI once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for distribution in CARRIED:
        version = metadata.version(distribution)
        stem = f"{distribution.replace('-', '_')}-{version}-"
        found = [w for w in folder.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if not found:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
                + [f"{distribution}=={version}"],
                check=True,
            )
            found = [w for w in folder.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if len(found) != 1 or not found[0].name.endswith("-none-any.whl"):
            raise RuntimeError(f"expected one pure-Python wheel of {distribution} {version} in {folder}, got {found}")
        wheels.append(found[0])
    return wheels


def prepare(
    faces: int, carry: Path, *, source: Path, weights: Path, wheels: list[Path], piece_bytes: int
) -> dict[str, Any]:
    """Payload → pieces ``carry/p<i>/payload.tar.gz.part`` of ≤ ``piece_bytes``, each with the manifest of all."""
    for old in carry.glob("p[0-9]*"):
        shutil.rmtree(old)
    carry.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=carry) as tmp:
        subset = Path(tmp) / FACES
        with zipfile.ZipFile(source) as archive, zipfile.ZipFile(subset, "w", zipfile.ZIP_STORED) as out:
            members = face_members(archive, faces)
            for member in members:
                out.writestr(member, archive.read(member))
        files = {WEIGHTS: weights, FACES: subset, **{f"{WHEELS}/{w.name}": w for w in wheels}}
        payload = Path(tmp) / "payload.tar.gz"
        # gzip: the weights' NaN classifier packs to nothing; dereference: FACEGEN_HOME's weights may be a link
        with tarfile.open(payload, "w:gz", compresslevel=6, dereference=True) as tar:
            for name, path in files.items():
                tar.add(path, arcname=name)
        pieces = []
        with payload.open("rb") as handle:
            for index in range(math.ceil(payload.stat().st_size / piece_bytes)):
                folder = carry / f"p{index}"
                folder.mkdir()
                (folder / PAYLOAD).write_bytes(handle.read(piece_bytes))
                pieces.append({"folder": folder.name, "bytes": (folder / PAYLOAD).stat().st_size})
        manifest = {
            "faces": len(members),
            "files": {name: sha256(path) for name, path in files.items()},
            "pieces": [{**piece, "sha256": sha256(carry / piece["folder"] / PAYLOAD)} for piece in pieces],
        }
    for piece in pieces:
        (carry / piece["folder"] / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def run_calls(manifest: dict[str, Any], carry: Path, root: Path = ROOT) -> list[dict[str, Any]]:
    """The device tool's `run` arguments, in order: every call but the last carries a piece and checks what arrived,
    the last carries the rest and runs the suite. The machine keeps ignored files between calls while it is warm
    (30 s after a call), so make them back to back."""
    folders = [str((carry / piece["folder"]).relative_to(root)) for piece in manifest["pieces"]]
    calls = [
        {"carry": [folder], "command": "bash benchmarks/gpu_suite.sh check", "timeout_s": 120} for folder in folders
    ]
    calls[-1] = {"carry": [folders[-1]], "command": "bash benchmarks/gpu_suite.sh device", "timeout_s": 560}
    return calls


# -- assemble (device) -----------------------------------------------------------------------------------------------
def read_manifest(carry: Path) -> dict[str, Any]:
    manifests = sorted(carry.glob(f"p[0-9]*/{MANIFEST}"))
    if not manifests:
        raise SystemExit(f"no pieces under {carry}: name .facegen/carry/p<i> in the run call's carry")
    return json.loads(manifests[-1].read_text())


def check_pieces(carry: Path, manifest: dict[str, Any]) -> list[str]:
    """Pieces missing or not as prepared (empty when all arrived intact)."""
    problems = []
    for piece in manifest["pieces"]:
        path = carry / piece["folder"] / PAYLOAD
        if not path.is_file():
            problems.append(f"{piece['folder']} missing")
        elif path.stat().st_size != piece["bytes"] or sha256(path) != piece["sha256"]:
            problems.append(f"{piece['folder']} differs from what prepare wrote")
    return problems


def assemble(carry: Path, into: Path) -> dict[str, Any]:
    """Pieces → files in ``into``, each checked against the manifest; a piece missing says which and why."""
    manifest = read_manifest(carry)
    problems = check_pieces(carry, manifest)
    if problems:
        raise SystemExit(
            f"cannot assemble: {'; '.join(problems)}. Pieces from earlier calls survive only while the machine stays "
            "warm (30 s after a call): make the calls back to back, from the first, on one machine"
        )
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    joined = into / "payload.tar.gz"
    with joined.open("wb") as out:
        for piece in manifest["pieces"]:
            with (carry / piece["folder"] / PAYLOAD).open("rb") as part:
                shutil.copyfileobj(part, out)
    with tarfile.open(joined, "r:gz") as tar:
        tar.extractall(into, filter="data")
    joined.unlink()
    wrong = [name for name, digest in manifest["files"].items() if sha256(into / name) != digest]
    if wrong:
        raise SystemExit(f"assembled files differ from what prepare packed: {wrong}")
    return manifest


# -- run (device) ----------------------------------------------------------------------------------------------------
class OutOfTime(Exception):
    """A part's time budget ran out (SIGALRM): its figures so far are kept, the suite moves on."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise OutOfTime(f"over its {seconds:.0f} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def training_values(config: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The train_gan step's training block of a rendered config with ``overrides`` on top: ``model`` merged key by
    key, unless the overrides name another architecture (whose model kwargs are others: then theirs alone)."""
    import yaml

    values = yaml.safe_load(config.read_text())["steps"]["train_gan"]["parameters"]["training"]
    same = overrides.get("architecture", values["architecture"]) == values["architecture"]
    model = {**values.get("model", {}), **overrides.get("model", {})} if same else overrides.get("model", {})
    return {**values, **overrides, "model": model}


def load_faces(archive: Path, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed uint8 faces (N×3×R×R) of every face in ``archive`` and their file-name label rows (N×3, −1 unknown)."""
    import pandas as pd

    from facegen.data.label_encoding import encode_attribute_labels
    from facegen.data.labels import parse_utkface_name
    from facegen.data.packing import pack_images
    from facegen.data.sources import zip_entry_uri

    with zipfile.ZipFile(archive) as handle:
        members = face_members(handle)
    plan = pd.DataFrame({"uri": [zip_entry_uri(str(archive.resolve()), m) for m in members]})
    parsed = pd.DataFrame([parse_utkface_name(m) for m in members])
    for name in ("gender", "age_bin", "ethnicity"):
        plan[f"attr_{name}"] = parsed[name]
    packed = pack_images(plan, resolution=resolution, workers=os.cpu_count() or 2, progress=False)
    return packed, encode_attribute_labels(plan)


def throughput(part: dict[str, Any], args: argparse.Namespace, packed: np.ndarray, device) -> None:
    """(a) train_throughput's three loops on the same DCGAN, batch and step count."""
    from train_throughput import extract_faces, facegen_loop, reference_loop, synthetic_loop  # the script's folder

    part["setup"] = {
        "model": f"dcgan {args.resolution}²",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "faces": args.throughput_faces,
        "reference_workers": args.workers,
    }
    rates = part["images_per_s"] = {}
    rates["synthetic"] = synthetic_loop(args.resolution, args.batch_size, args.steps, device)
    rates["facegen"] = facegen_loop(packed[: args.throughput_faces], args.batch_size, args.steps, device)
    with tempfile.TemporaryDirectory() as tmp:
        extract_faces(args.throughput_faces, Path(tmp), source=args.data / FACES)
        rates["reference"] = reference_loop(
            Path(tmp), args.resolution, args.batch_size, args.steps, device, args.workers
        )
    part["facegen_over_synthetic"] = rates["facegen"] / rates["synthetic"]
    part["facegen_over_reference"] = rates["facegen"] / rates["reference"]


class _Done(Exception):
    """The last FID point is in: train_gan has no time budget of its own, so the schedule stops it."""


def fid_vs_minutes(
    part: dict[str, Any], args: argparse.Namespace, packed: np.ndarray, labels: np.ndarray, device
) -> None:
    """(b) the best config trained until each of ``--points`` training minutes (evaluation excluded), scored there."""
    from facegen.data.label_encoding import label_shares, labels_for_model
    from facegen.metrics.features import RealFeatures, unique_images
    from facegen.models.conditioning import label_dims_for
    from facegen.train.config import TrainingConfig
    from facegen.train.fid_tracker import TrainingFID
    from facegen.train.loop import train_gan

    values = training_values(args.config, args.set)
    values.update(
        epochs=10**6,
        checkpoint_every_steps=0,
        log_every_steps=EVERY_STEPS,
        fid_every_steps=EVERY_STEPS,
        monitor_every_steps=10**9,
        device=str(device),
    )
    config = TrainingConfig.from_dict(values)
    label_dims = label_dims_for(config.model.get("conditioning"))
    minutes = [float(m) for m in args.points.split(",")]
    part["setup"] = {"config": str(args.config), "set": args.set, "training": values}
    started = time.perf_counter()
    real = RealFeatures.from_images(unique_images(packed)[: args.real], weights_path=args.data / WEIGHTS, device=device)
    part["real"] = {"faces": real.count, "seconds": time.perf_counter() - started}
    part["faces"], part["fid_samples"], part["points"] = len(packed), args.fid_samples, []
    targets = label_shares(labels) if label_dims else {}
    tracker = TrainingFID(real, args.data / WEIGHTS, num_samples=args.fid_samples, seed=123, targets=targets)
    step_images = config.batch_size * config.d_steps_per_g_step
    calls = 0

    def schedule(generator) -> float:  # every EVERY_STEPS steps; NaN (no point) until the next point is due
        nonlocal calls
        calls += 1
        if tracker.training_minutes() < minutes[len(tracker.points)]:
            return math.nan
        fid = tracker(generator)
        steps = calls * EVERY_STEPS
        point = {**tracker.points[-1], "generator_steps": steps, "images_seen": steps * step_images}
        part["points"].append(point)
        print(json.dumps({"fid_point": {k: round(v, 3) for k, v in point.items()}}), flush=True)
        if len(tracker.points) == len(minutes):
            raise _Done
        return fid

    with contextlib.suppress(_Done):
        train_gan(
            packed,
            config,
            labels=labels_for_model(labels, label_dims) if label_dims else None,
            fid_fn=schedule,
            progress=False,
        )


def latency(part: dict[str, Any], args: argparse.Namespace, device) -> None:
    """(c) one face at a time at ``--latency-resolution`` through the seed→face path, and its JPEG encoding."""
    import torch

    from facegen.metrics.latency import generation_latency
    from facegen.models.conditioning import label_dims_for
    from facegen.models.registry import build_generator
    from facegen.models.sampling import faces_from_seeds
    from facegen.serve.imaging import encode_face

    values = training_values(args.config, args.set)
    model = {**values["model"], "resolution": args.latency_resolution}
    torch.manual_seed(0)
    generator = build_generator(values["architecture"], model).eval()  # untrained: latency does not depend on it
    label_dims = label_dims_for(model.get("conditioning"))
    unspecified = np.full(len(label_dims), -1) if label_dims else None  # one row: every attribute "any"
    part["setup"] = {
        "architecture": values["architecture"],
        "model": model,
        "weights": "random init",
        "parameters": sum(p.numel() for p in generator.parameters()),
        "batch": 1,
    }
    part["generate"] = generation_latency(
        generator, repeats=args.latency_repeats, warmup=5, device=device, labels=unspecified
    )
    face = faces_from_seeds(generator, [0], labels=unspecified, device=device)[0].transpose(1, 2, 0)
    timings = []
    for _ in range(args.latency_repeats):
        began = time.perf_counter()
        encode_face(face, size=args.latency_resolution, fmt="jpeg")
        timings.append(1000 * (time.perf_counter() - began))
    p50, p95 = np.percentile(timings, [50, 95])
    part["jpeg_encode"] = {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95)}


def imported_off_device(site: Path | None) -> list[str]:
    """Modules this process imported that the device lacks, or took from elsewhere than the carried wheels."""
    loaded = {name.split(".")[0] for name in sys.modules}
    wrong = [name for name in ABSENT_ON_DEVICE if name in loaded]
    for module in CARRIED.values():
        where = Path(getattr(sys.modules.get(module), "__file__", None) or "")
        if module in loaded and (site is None or site.resolve() not in where.resolve().parents):
            wrong.append(f"{module} from {where} (not the carried wheel in {site})")
    return wrong


def table(summary: dict[str, Any]) -> str:
    """The figures as a markdown table (what docs/benchmarks.md takes)."""
    rows = [("part", "figure", "value")]
    a, b, c = (summary["parts"].get(name, {}) for name in ("throughput", "fid_vs_minutes", "latency"))
    for loop, rate in a.get("images_per_s", {}).items():
        rows.append(("throughput", f"{loop} images/s", f"{rate:.0f}"))
    for ratio in ("facegen_over_synthetic", "facegen_over_reference"):
        if ratio in a:
            rows.append(("throughput", ratio.replace("_over_", " / "), f"{a[ratio]:.2f}"))
    for point in b.get("points", []):
        rows.append(
            (
                "fid_vs_minutes",
                f"FID @ {point['training_minutes']:.2f} min ({point['images_seen']} images)",
                f"{point['fid']:.1f}",
            )
        )
    for what in ("generate", "jpeg_encode"):
        if what in c:
            p50, p95 = c[what]["latency_p50_ms"], c[what]["latency_p95_ms"]
            rows.append(
                (
                    "latency",
                    f"{what} p50 / p95 ms ({c['setup']['model']['resolution']}², batch 1)",
                    f"{p50:.2f} / {p95:.2f}",
                )
            )
    for name, part in summary["parts"].items():
        for flag in ("timed_out", "error"):
            if part.get(flag):
                rows.append((name, flag, str(part[flag])))
    return "\n".join(f"| {' | '.join(row)} |" for row in rows[:1] + [("---",) * 3] + rows[1:])


def run(args: argparse.Namespace) -> int:
    import torch

    from facegen.devices import resolve_device

    started = time.perf_counter()
    device = resolve_device(args.device)
    summary: dict[str, Any] = {
        "suite": "benchmarks/gpu_suite.py",
        "command": " ".join(sys.argv),
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "resolution": args.resolution,
        "parts": {},
    }

    def save() -> None:
        summary["wall_seconds"] = time.perf_counter() - started
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2, default=str))

    wanted = args.parts.split(",")
    if {"throughput", "fid_vs_minutes"} & set(wanted):
        packed, labels = load_faces(args.data / FACES, args.resolution)
        summary["load_seconds"] = time.perf_counter() - started
    parts: list[tuple[str, float, Callable[[dict[str, Any]], None]]] = [
        ("throughput", args.throughput_budget, lambda part: throughput(part, args, packed, device)),
        ("fid_vs_minutes", args.fid_budget, lambda part: fid_vs_minutes(part, args, packed, labels, device)),
        ("latency", args.latency_budget, lambda part: latency(part, args, device)),
    ]
    for name, budget, measure in parts:
        if name not in wanted:
            continue
        part = summary["parts"][name] = {}
        left = args.budget - (time.perf_counter() - started)
        began = time.perf_counter()
        try:
            with time_budget(min(budget, left)):
                measure(part)
        except OutOfTime as stop:
            part["timed_out"] = str(stop)
        except Exception as error:  # noqa: BLE001 - one part's failure must not cost the others' figures
            traceback.print_exc()
            part["error"] = f"{type(error).__name__}: {error}"
        part["seconds"] = time.perf_counter() - began
        print(f"{name}: {part['seconds']:.1f} s", flush=True)
        save()
    summary["imported_off_device"] = imported_off_device(args.site)
    save()
    print(table(summary))
    print(f"wrote {args.out} ({summary['wall_seconds']:.0f} s)")
    failed = [
        name for name, part in summary["parts"].items() if "error" in part or (args.smoke and "timed_out" in part)
    ]
    if summary["imported_off_device"]:
        print(f"imported what the device lacks: {summary['imported_off_device']}", file=sys.stderr)
    return 1 if failed or summary["imported_off_device"] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="here: weights, faces and wheels into pieces under --carry")
    prep.add_argument("--faces", type=int, default=8000, help="first N faces of the shared zip")
    prep.add_argument("--carry", type=Path, default=CARRY)
    prep.add_argument("--source", type=Path, default=None, help="default: facegen.paths.DEFAULT_SOURCE")
    check = commands.add_parser("check", help="device: which pieces arrived")
    check.add_argument("--carry", type=Path, default=CARRY)
    join = commands.add_parser("assemble", help="device: pieces → --into")
    join.add_argument("--carry", type=Path, default=CARRY)
    join.add_argument("--into", type=Path, default=DATA)
    go = commands.add_parser("run", help="device: the three parts; one JSON, a table")
    go.add_argument("--smoke", action="store_true", help=f"toy sizes on the CPU: {json.dumps(SMOKE)}")
    go.add_argument("--data", type=Path, default=DATA, help="what assemble wrote")
    go.add_argument("--out", type=Path, default=DATA / "gpu_suite.json")
    go.add_argument("--site", type=Path, default=None, help="where gpu_suite.sh installed the carried wheels")
    go.add_argument("--device", default="auto")
    go.add_argument("--parts", default=",".join(PARTS), help="comma-separated, from " + ", ".join(PARTS))
    go.add_argument("--resolution", type=int, default=64)
    go.add_argument("--throughput-faces", type=int, default=2048, help="(a) faces: packed, and JPEGs for the reference")
    go.add_argument("--batch-size", type=int, default=128, help="(a)")
    go.add_argument("--steps", type=int, default=200, help="(a) generator steps per loop")
    go.add_argument("--workers", type=int, default=8, help="(a) the reference's DataLoader workers")
    go.add_argument("--config", type=Path, default=ROOT / "configs/gpu.yaml", help="(b, c) its train_gan training")
    go.add_argument("--set", type=json.loads, default={}, help="(b, c) JSON of TrainingConfig values on top")
    go.add_argument("--real", type=int, default=4000, help="(b) distinct real faces behind the cached features")
    go.add_argument("--fid-samples", type=int, default=2000, help="(b) generated faces per FID")
    go.add_argument("--points", default="0.5,1,2,3.5", help="(b) training minutes at which FID is taken")
    go.add_argument("--latency-resolution", type=int, default=1024, help="(c)")
    go.add_argument("--latency-repeats", type=int, default=100, help="(c) timed faces")
    go.add_argument("--budget", type=float, default=450.0, help="seconds for everything, loading included")
    go.add_argument("--throughput-budget", type=float, default=75.0)
    go.add_argument("--fid-budget", type=float, default=290.0)
    go.add_argument("--latency-budget", type=float, default=45.0)
    if "--smoke" in sys.argv[2:] and sys.argv[1:2] == ["run"]:
        go.set_defaults(**SMOKE)
    args = parser.parse_args()
    if args.command == "run" and set(args.parts.split(",")) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(set(args.parts.split(',')) - set(PARTS))}; choose from {PARTS}")

    if args.command == "prepare":
        from facegen.metrics.inception_weights import ensure_inception_weights
        from facegen.paths import DEFAULT_SOURCE

        source = args.source or ROOT / DEFAULT_SOURCE
        manifest = prepare(
            args.faces,
            args.carry.resolve(),
            source=source,
            weights=ensure_inception_weights(),
            wheels=carried_wheels(CARRY / WHEELS),  # a download cache, wherever the pieces go
            piece_bytes=CALL_LIMIT - tree_bytes() - TREE_MARGIN,
        )
        print(json.dumps(manifest, indent=2))
        if args.carry.resolve().is_relative_to(ROOT):
            print("device tool calls, in this order, back to back:")
            for call in run_calls(manifest, args.carry.resolve()):
                print(json.dumps(call))
    elif args.command == "check":
        manifest = read_manifest(args.carry)
        problems = check_pieces(args.carry, manifest)
        print(
            f"{len(manifest['pieces']) - len(problems)} of {len(manifest['pieces'])} pieces here; {problems or 'all intact'}"
        )
    elif args.command == "assemble":
        manifest = assemble(args.carry, args.into)
        print(f"assembled {len(manifest['files'])} files ({manifest['faces']} faces) into {args.into}")
    else:
        raise SystemExit(run(args))


if __name__ == "__main__":
    main()

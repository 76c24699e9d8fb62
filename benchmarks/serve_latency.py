"""Latency of ``facegen serve`` under load over real HTTP on loopback, and a hot swap of the champion under that load.

What it does, all on 127.0.0.1:
1. starts a real ``mlflow server`` (SQLite + local artifacts in a temp dir);
2. builds two DCGAN generators with RANDOM-INIT weights (latency does not depend on training) for the chosen
   ``--resolution`` / ``--width``, logs and registers them as versions 1 and 2 of ``facegen-generator`` and approves
   version 1 as champion;
3. measures baselines in this process, without HTTP: one face generated + resized + JPEG-encoded, one face in a
   batch of ``--concurrency``, and PNG vs JPEG encoding of one face at ``--size``;
4. starts ``facegen serve`` (a real uvicorn process) and, after a warm-up, runs ``--concurrency`` closed-loop async
   clients (aiohttp by default, or httpx.AsyncClient; keep-alive) for ``--duration`` seconds, each asking ``GET /generate`` for a random seed
   at ``--size`` in ``--format``;
5. with ``--swap``: moves ``champion`` to version 2 halfway through and reports failed requests and how long until
   responses carry the new version (the service polls the alias every ``--poll-interval`` seconds);
6. ``--marking both`` (the default) runs steps 4-5 twice, with provenance marking on (watermark + C2PA signature,
   a throwaway CA made for the run) and off, one after the other on the same service settings, and reports the p95
   each adds; the baselines include the marking of one face in-process (watermark, encode, sign).
Prints p50 / p95 / p99 / max latency, throughput, errors and ratios against the baselines; ``--json-out`` saves them.

    python benchmarks/serve_latency.py --duration 60                       # 32×32 generator (configs/local.yaml) at 256
    python benchmarks/serve_latency.py --duration 60 --swap --marking on
    python benchmarks/serve_latency.py --duration 60 --resolution 256 --width 16   # native 256×256 generator
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from facegen.registry.names import GENERATOR_MODEL_NAME

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' server helpers
from tests.local_servers import running_facegen_serve  # noqa: E402
from tests.mlflow_server import running_mlflow_server  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def register_two_versions(uri: str, root: Path, model_config: dict) -> list[Path]:
    import mlflow
    import torch

    from facegen.gates import GateDecision
    from facegen.models.bundle import save_generator_bundle
    from facegen.models.registry import build_generator
    from facegen.registry.generator_model import log_generator_model
    from facegen.registry.model_registry import apply_gate, approve_version, register_version
    from facegen.registry.tracking import mlflow_client

    mlflow.set_tracking_uri(uri)  # log_generator_model logs into the active run, which follows the global URI
    client = mlflow_client(uri)
    bundles = []
    with mlflow.start_run(run_name="serve-latency-benchmark"):
        for weights_seed in (1, 2):
            torch.manual_seed(weights_seed)
            bundle = save_generator_bundle(
                root / f"bundle{weights_seed}", "dcgan", model_config, build_generator("dcgan", model_config)
            )
            bundles.append(bundle)
            info = log_generator_model(bundle, artifact_name=f"generator{weights_seed}")
            version = register_version(
                info.model_uri, name=GENERATOR_MODEL_NAME, metrics={"fid": 0.0}, tags={}, client=client
            )
            apply_gate(client, version, GateDecision(True, []))
    approve_version(client, GENERATOR_MODEL_NAME, "1", approved_by="benchmark")
    return bundles


def timed(function, repeats: int) -> float:
    """Mean seconds per call after one warm-up call."""
    function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def baselines(bundle: Path, size: int, batch: int, quality: int, credentials: Path) -> dict[str, float]:
    """Per-face costs in this process on ONE torch thread (wall ≈ CPU time): with two OpenMP threads on a 2-core
    machine that other jobs share, a single forward pass stalls at barriers (measured here: 55-108 ms instead of
    3.7 ms for one 32×32 face), which would make the baseline measure the neighbours instead of the work."""
    import torch

    from facegen.models.bundle import load_generator_bundle
    from facegen.serve.imaging import encode_face
    from facegen.serve.inference import render_faces

    generator = load_generator_bundle(bundle)
    rng = random.Random(0)
    face = render_faces(generator, [1])[0]
    repeats = 30

    def one_face() -> None:
        encode_face(render_faces(generator, [rng.randrange(2**32)])[0], size=size, fmt="jpeg", jpeg_quality=quality)

    def batch_faces() -> None:
        for image in render_faces(generator, [rng.randrange(2**32) for _ in range(batch)]):
            encode_face(image, size=size, fmt="jpeg", jpeg_quality=quality)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            **_baselines(one_face, batch_faces, generator, face, rng, size, batch, quality, repeats),
            **_marking_baselines(face, size, quality, credentials, repeats),
        }
    finally:
        torch.set_num_threads(threads)


def _marking_baselines(face, size: int, quality: int, credentials: Path, repeats: int) -> dict[str, float]:
    """What marking one face costs in-process, and the bytes the watermark (entropy) and the manifest each add."""
    import numpy as np

    from facegen.provenance.c2pa_manifest import FaceProvenance, ManifestSigner
    from facegen.provenance.credentials import SigningCredentials
    from facegen.provenance.marking import mark_face
    from facegen.provenance.watermark import MIN_WATERMARK_SIDE, embed_watermark
    from facegen.serve.imaging import encode_face, encode_image, resize_face

    signer = ManifestSigner(SigningCredentials.load(credentials))
    made = FaceProvenance(GENERATOR_MODEL_NAME, "1", "0123456789abcdef0123456789abcdef", 1, 1.0, {})
    resized = np.asarray(resize_face(face, size))
    watermarked = embed_watermark(resized, 1, made.model_run_id) if size >= MIN_WATERMARK_SIDE else resized
    plain = {fmt: encode_face(face, size=size, fmt=fmt, jpeg_quality=quality) for fmt in ("jpeg", "png")}
    unsigned = {fmt: encode_image(watermarked, fmt=fmt, jpeg_quality=quality) for fmt in plain}
    marked = {fmt: mark_face(face, made, signer, size=size, fmt=fmt, jpeg_quality=quality) for fmt in plain}
    costs = {
        "mark_jpeg_ms": 1000
        * timed(lambda: mark_face(face, made, signer, size=size, fmt="jpeg", jpeg_quality=quality), repeats),
        "sign_jpeg_ms": 1000 * timed(lambda: signer.sign(plain["jpeg"], "image/jpeg", made), repeats),
        **{f"manifest_bytes_{fmt}": float(len(marked[fmt]) - len(unsigned[fmt])) for fmt in plain},
        **{f"watermark_bytes_{fmt}": float(len(unsigned[fmt]) - len(plain[fmt])) for fmt in plain},
        **{f"plain_bytes_{fmt}": float(len(plain[fmt])) for fmt in plain},
    }
    if size >= MIN_WATERMARK_SIDE:
        costs["watermark_embed_ms"] = 1000 * timed(lambda: embed_watermark(resized, 1, made.model_run_id), repeats)
    return costs


def _baselines(one_face, batch_faces, generator, face, rng, size, batch, quality, repeats) -> dict[str, float]:
    from facegen.serve.imaging import encode_face
    from facegen.serve.inference import render_faces

    return {
        "inprocess_face_jpeg_ms": 1000 * timed(one_face, repeats),
        "inprocess_batched_face_jpeg_ms": 1000 * timed(batch_faces, max(3, repeats // batch)) / batch,
        "generate_only_ms": 1000 * timed(lambda: render_faces(generator, [rng.randrange(2**32)]), repeats),
        "encode_jpeg_ms": 1000 * timed(lambda: encode_face(face, size=size, fmt="jpeg", jpeg_quality=quality), repeats),
        "encode_png_level1_ms": 1000 * timed(lambda: encode_face(face, size=size, fmt="png", png_compress_level=1), 10),
        "encode_png_level6_ms": 1000 * timed(lambda: encode_face(face, size=size, fmt="png", png_compress_level=6), 5),
    }


def service_config(root: Path, tracking_uri: str, args: argparse.Namespace, marking: bool) -> Path:
    """The service's settings file for one run (marking on or off)."""
    import yaml

    sizes = sorted({16, 32, 64, 128, 256, 512, 1024, args.size})
    config = root / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tracking_uri": tracking_uri,
                "model_name": GENERATOR_MODEL_NAME,
                "poll_interval_s": args.poll_interval,
                "allowed_sizes": sizes,
                "default_size": args.size,
                "jpeg_quality": args.jpeg_quality,
                "feedback_db": str(root / "feedback.db"),
                "device": "auto",
                "torch_threads": args.torch_threads,
                "provenance": {"enabled": marking, "credentials_dir": str(root / "credentials")},
            }
        )
    )
    return config


class _HttpxClient:
    def __init__(self, base: str, concurrency: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.errors = (httpx.HTTPError,)
        self.client = httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0)

    async def get(self, path: str, params: dict) -> tuple[int, str | None, int]:
        response = await self.client.get(path, params=params)
        return response.status_code, response.headers.get("x-facegen-model-version"), len(response.content)

    async def close(self) -> None:
        await self.client.aclose()


class _AiohttpClient:
    def __init__(self, base: str, concurrency: int) -> None:
        import aiohttp

        self.errors = (aiohttp.ClientError, asyncio.TimeoutError)
        self.client = aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=30)
        )

    async def get(self, path: str, params: dict) -> tuple[int, str | None, int]:
        async with self.client.get(path, params=params) as response:
            body = await response.read()
            return response.status, response.headers.get("x-facegen-model-version"), len(body)

    async def close(self) -> None:
        await self.client.close()


async def run_load(base: str, args: argparse.Namespace, duration: float, swap_at: float | None, tracking_uri: str):
    """Closed-loop clients; returns (records, swap time, start). A record: (start, end, status, version or None)."""
    records: list[tuple[float, float, int, str | None]] = []
    swap_time: list[float] = []
    client = (_AiohttpClient if args.client == "aiohttp" else _HttpxClient)(base, args.concurrency)
    started = time.perf_counter()
    deadline = started + duration

    async def worker(index: int) -> None:
        rng = random.Random(index * 7919 + int(duration * 1000))
        while time.perf_counter() < deadline:
            params = {"seed": rng.randrange(2**32), "size": args.size, "format": args.format}
            t0 = time.perf_counter()
            try:
                status, version, length = await client.get("/generate", params)
                if status == 200 and length == 0:
                    status = -2  # an empty body is an error too
            except client.errors:
                status, version = -1, None
            records.append((t0, time.perf_counter(), status, version))

    async def swapper() -> None:
        await asyncio.sleep(swap_at)
        from facegen.registry.model_registry import approve_version
        from facegen.registry.tracking import mlflow_client

        registry = mlflow_client(tracking_uri)
        await asyncio.to_thread(approve_version, registry, GENERATOR_MODEL_NAME, "2", approved_by="benchmark")
        swap_time.append(time.perf_counter())

    tasks = [asyncio.create_task(worker(i)) for i in range(args.concurrency)]
    if swap_at is not None:
        tasks.append(asyncio.create_task(swapper()))
    try:
        await asyncio.gather(*tasks)
    finally:
        await client.close()
    return records, (swap_time[0] if swap_time else None), started


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(root: Path, tracking_uri: str, args: argparse.Namespace, marking: bool, base_ms: dict) -> dict:
    """One service (marking on or off) under ``--concurrency`` clients for ``--duration`` s: its latency figures."""
    env = {**os.environ, "FACEGEN_HOME": str(root / "home")}
    config = service_config(root, tracking_uri, args, marking)
    with running_facegen_serve(config, env, root / "serve.log") as (base, service):
        asyncio.run(run_load(base, args, args.warmup, None, tracking_uri))  # warm-up, discarded
        swap_at = args.duration / 2 if args.swap else None
        service_cpu_before, client_cpu_before, load_before = (
            process_cpu_s(service.pid),
            time.process_time(),
            os.getloadavg(),
        )
        records, swap_time, started = asyncio.run(run_load(base, args, args.duration, swap_at, tracking_uri))
        service_cpu = process_cpu_s(service.pid) - service_cpu_before
        client_cpu = time.process_time() - client_cpu_before
        load_after = os.getloadavg()
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            metrics_text = response.read().decode()

    ok = [(t0, t1, version) for t0, t1, status, version in records if status == 200]
    latencies_ms = [1000 * (t1 - t0) for t0, t1, _ in ok]
    errors = len(records) - len(ok)
    elapsed = max(t1 for _, t1, _, _ in records) - started
    result = {
        "requests": len(records),
        "errors": errors,
        "throughput_rps": len(records) / elapsed,
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms),
        "mean_ms": statistics.fmean(latencies_ms),
        # CPU the service and the load generator used per request: robust to other jobs sharing the machine.
        "service_cpu_ms_per_request": 1000 * service_cpu / max(1, len(records)),
        "client_cpu_ms_per_request": 1000 * client_cpu / max(1, len(records)),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    batch_sum = next(
        (float(l.split()[-1]) for l in metrics_text.splitlines() if l.startswith("facegen_generation_batch_faces_sum")),
        0,
    )
    batch_count = next(
        (
            float(l.split()[-1])
            for l in metrics_text.splitlines()
            if l.startswith("facegen_generation_batch_faces_count")
        ),
        0,
    )
    result["mean_faces_per_forward"] = batch_sum / batch_count if batch_count else None
    result["ratio_p50_vs_inprocess_face"] = result["p50_ms"] / base_ms["inprocess_face_jpeg_ms"]
    # CPU the service spends per request vs the bare work of one face in a batch: the cost of HTTP + serving.
    result["ratio_service_cpu_vs_inprocess_batched_face"] = (
        result["service_cpu_ms_per_request"] / base_ms["inprocess_batched_face_jpeg_ms"]
    )
    result["ratio_png1_vs_jpeg_encode"] = base_ms["encode_png_level1_ms"] / base_ms["encode_jpeg_ms"]
    result["ratio_png6_vs_jpeg_encode"] = base_ms["encode_png_level6_ms"] / base_ms["encode_jpeg_ms"]
    if swap_time is not None:
        new = [t1 for _, t1, version in ok if version == "2"]
        first_new = min(new) if new else None
        result["swap"] = {
            "moved_at_s": swap_time - started,
            "new_version_visible_after_s": (first_new - swap_time) if first_new else None,
            "poll_interval_s": args.poll_interval,
            "failed_requests": errors,
            "old_version_started_after_new_visible": sum(
                1 for t0, _, version in ok if first_new is not None and version == "1" and t0 > first_new
            ),
            "responses_v1": sum(1 for *_, version in ok if version == "1"),
            "responses_v2": len(new),
        }
    return result


def print_run(label: str, result: dict, args: argparse.Namespace) -> None:
    errors = result["errors"]
    print(
        f"{label}: {args.concurrency} clients x {args.duration:g} s: {result['requests']} requests, {errors} errors, "
        f"{result['throughput_rps']:.1f} req/s, mean {result['mean_faces_per_forward'] or 0:.1f} faces per forward"
    )
    print(
        f"latency ms: p50 {result['p50_ms']:.1f}  p95 {result['p95_ms']:.1f}  p99 {result['p99_ms']:.1f}  "
        f"max {result['max_ms']:.1f}  (p50 / in-process face = {result['ratio_p50_vs_inprocess_face']:.2f}x; "
        f"PNG/JPEG encode = {result['ratio_png1_vs_jpeg_encode']:.1f}x at level 1, {result['ratio_png6_vs_jpeg_encode']:.1f}x at 6)"
    )
    print(
        f"cpu per request: service {result['service_cpu_ms_per_request']:.2f} ms "
        f"({result['ratio_service_cpu_vs_inprocess_batched_face']:.2f}x the in-process batched face), load generator "
        f"{result['client_cpu_ms_per_request']:.2f} ms; 1-min load average {result['loadavg_1m_before_after'][0]} -> "
        f"{result['loadavg_1m_before_after'][1]} on {os.cpu_count()} cores (other jobs share the machine)"
    )
    if "swap" in result:
        s = result["swap"]
        visible = (
            f"{s['new_version_visible_after_s']:.2f} s" if s["new_version_visible_after_s"] is not None else "never"
        )
        print(
            f"swap: champion moved at t={s['moved_at_s']:.1f} s; version 2 visible after {visible} "
            f"(poll {s['poll_interval_s']:g} s); failed requests {s['failed_requests']}; "
            f"v1 responses started after v2 was visible {s['old_version_started_after_new_visible']}; "
            f"v1/v2 responses {s['responses_v1']}/{s['responses_v2']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of unmeasured load first")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="side of the requested face")
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--resolution", type=int, default=32, help="generator's native resolution")
    parser.add_argument("--width", type=int, default=64, help="DCGAN channel multiplier")
    parser.add_argument("--swap", action="store_true", help="move champion to version 2 halfway through")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="the service's alias poll interval (s)")
    parser.add_argument("--torch-threads", type=int, default=None, help="the service's torch_threads setting")
    parser.add_argument(
        "--client",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="async HTTP client (aiohttp costs ~0.2 ms CPU a request here, httpx ~1.5 ms: CPU the service then lacks)",
    )
    parser.add_argument(
        "--marking",
        choices=["both", "on", "off"],
        default="both",
        help="provenance marking of the served faces: both runs the load twice, on then off, and reports the difference",
    )
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from facegen.devices import resolve_device
    from facegen.provenance.credentials import write_local_credentials
    from facegen.registry.model_registry import approve_version
    from facegen.registry.tracking import mlflow_client

    model_config = {"resolution": args.resolution, "width": args.width, "latent_dim": 100, "norm": "batch"}
    device = str(resolve_device())
    summary: dict = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "model": {"architecture": "dcgan", **model_config, "weights": "random init"},
        "size": args.size,
        "format": args.format,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "client": args.client,
        "torch_threads": args.torch_threads,
        "marking": args.marking,
    }
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.marking]
    with tempfile.TemporaryDirectory(prefix="facegen-bench-") as scratch:
        root = Path(scratch)
        write_local_credentials(root / "credentials", common_name="facegen benchmark")
        with running_mlflow_server(root, dict(os.environ)) as tracking_uri:
            bundles = register_two_versions(tracking_uri, root, model_config)
            summary["baseline"] = baselines(
                bundles[0], args.size, args.concurrency, args.jpeg_quality, root / "credentials"
            )
            summary["results"] = {}
            for marking in modes:
                if args.swap:  # each run swaps from version 1 to 2
                    approve_version(mlflow_client(tracking_uri), GENERATOR_MODEL_NAME, "1", approved_by="benchmark")
                summary["results"]["on" if marking else "off"] = measure(
                    root, tracking_uri, args, marking, summary["baseline"]
                )

    b = summary["baseline"]
    print(
        f"CPU: {summary['cpu']} ({summary['cores']} cores), device {device}{' ' + summary['gpu'] if summary['gpu'] else ''}"
    )
    print(
        f"model: DCGAN {args.resolution}x{args.resolution} width {args.width} (random init), served at {args.size}x{args.size} {args.format}"
    )
    print(
        f"baseline in-process (1 thread): face+{args.format} {b['inprocess_face_jpeg_ms']:.2f} ms, batched/{args.concurrency} "
        f"{b['inprocess_batched_face_jpeg_ms']:.2f} ms/face, generate {b['generate_only_ms']:.2f} ms, "
        f"JPEG {b['encode_jpeg_ms']:.2f} ms, PNG(l1) {b['encode_png_level1_ms']:.2f} ms, PNG(l6) {b['encode_png_level6_ms']:.2f} ms"
    )
    watermark = f", watermark alone {b['watermark_embed_ms']:.2f} ms" if "watermark_embed_ms" in b else ""
    print(
        f"marking one face in-process: resize + mark + JPEG + sign {b['mark_jpeg_ms']:.2f} ms (sign alone "
        f"{b['sign_jpeg_ms']:.2f} ms{watermark}) vs resize + JPEG {b['encode_jpeg_ms']:.2f} ms; the manifest adds "
        f"{b['manifest_bytes_jpeg']:.0f} B to a {b['plain_bytes_jpeg']:.0f} B JPEG ({b['manifest_bytes_png']:.0f} B "
        f"to a {b['plain_bytes_png']:.0f} B PNG), the watermark's texture {b['watermark_bytes_jpeg']:.0f} B "
        f"({b['watermark_bytes_png']:.0f} B)"
    )
    for mode, result in summary["results"].items():
        print_run(f"marking {mode}", result, args)
    if len(summary["results"]) == 2:
        on, off = summary["results"]["on"], summary["results"]["off"]
        summary["marking_added"] = {
            "p50_ms": on["p50_ms"] - off["p50_ms"],
            "p95_ms": on["p95_ms"] - off["p95_ms"],
            "p95_ratio": on["p95_ms"] / off["p95_ms"],
            "service_cpu_ms_per_request": on["service_cpu_ms_per_request"] - off["service_cpu_ms_per_request"],
        }
        added = summary["marking_added"]
        print(
            f"marking on vs off at {args.size}x{args.size} {args.format}: p95 {on['p95_ms']:.1f} vs {off['p95_ms']:.1f} ms "
            f"(+{added['p95_ms']:.1f} ms, {added['p95_ratio']:.2f}x), p50 +{added['p50_ms']:.1f} ms, service CPU "
            f"+{added['service_cpu_ms_per_request']:.2f} ms per request"
        )
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# GPU suite (issue #13; benchmarks/gpu_suite.py says what it measures). Usage, from anywhere:
#   benchmarks/gpu_suite.sh prepare [--faces N]   here: pieces under .facegen/carry/ + the device calls to paste
#   benchmarks/gpu_suite.sh check                 device: which pieces arrived (every call but the last)
#   benchmarks/gpu_suite.sh device [run flags]    device: assemble, install the carried wheels, run ≤ 8 minutes
#   benchmarks/gpu_suite.sh smoke                 here: all of it at toy sizes on the CPU, niced
#   benchmarks/gpu_suite.sh shard-stream [flags]  device, instead of `device`: benchmarks/shard_stream.py (issue #15)
# Only the device's own python3 (torch 2.11) and the library under src/ are used there; the JSON and a log go to
# $OUT when the device tool sets it, else to .facegen/gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
here=.venv/bin/python

install_wheels() {  # $1 python, $2 wheels folder, $3 target site: pure-Python wheels, no index, no dependencies
  "$1" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$3" "$2"/*.whl
}

case "${1:-}" in
  prepare)
    "$here" benchmarks/gpu_suite.py prepare "${@:2}"
    ;;
  check)
    nvidia-smi -L || true
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
    python3 benchmarks/gpu_suite.py check
    ;;
  device)
    out="${OUT:-.facegen/gpu}"
    mkdir -p "$out"
    python3 benchmarks/gpu_suite.py assemble 2>&1 | tee "$out/gpu_suite.log"
    install_wheels python3 .facegen/gpu/wheels /tmp/facegen-site
    # 480 s: the issue's 8 device minutes; the suite's own --budget (450 s) ends it first, keeping the JSON whole.
    PYTHONPATH="/tmp/facegen-site:$PYTHONPATH" timeout -k 10 480 python3 benchmarks/gpu_suite.py run \
      --site /tmp/facegen-site --out "$out/gpu_suite.json" "${@:2}" 2>&1 | tee -a "$out/gpu_suite.log"
    ;;
  shard-stream)
    out="${OUT:-.facegen/gpu}"
    mkdir -p "$out"
    python3 benchmarks/gpu_suite.py assemble 2>&1 | tee "$out/shard_stream.log"
    install_wheels python3 .facegen/gpu/wheels /tmp/facegen-site
    # the carried faces (prepare --faces), packed and streamed on the GPU; 8 threads: the device has 16 cores
    PYTHONPATH="/tmp/facegen-site:$PYTHONPATH" timeout -k 10 480 python3 benchmarks/shard_stream.py --device cuda \
      --zip .facegen/gpu/faces.zip --workers 8 --out "$out/shard-stream" "${@:2}" 2>&1 | tee -a "$out/shard_stream.log"
    ;;
  smoke)
    scratch=.facegen/gpu-smoke  # ignored; kept for a look at gpu_suite.json afterwards
    rm -rf "$scratch"
    nice -n 10 "$here" benchmarks/gpu_suite.py prepare --faces 256 --carry "$scratch/carry" >/dev/null
    nice -n 10 "$here" benchmarks/gpu_suite.py assemble --carry "$scratch/carry" --into "$scratch/gpu"
    install_wheels "$here" "$scratch/gpu/wheels" "$scratch/site"
    PYTHONPATH="$scratch/site:$PYTHONPATH" nice -n 10 timeout -k 10 230 "$here" benchmarks/gpu_suite.py run --smoke \
      --data "$scratch/gpu" --site "$scratch/site" --out "$scratch/gpu_suite.json" "${@:2}"
    ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 2
    ;;
esac

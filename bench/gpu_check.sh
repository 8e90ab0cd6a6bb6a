#!/usr/bin/env bash
# The prepared GPU check for ferrule's CUDA path (issue 5). Run from anywhere:
#
#     bash bench/gpu_check.sh [gpu_bench.py options, e.g. --peers eager,jax]
#
# Needs: an NVIDIA GPU + driver, Python 3 with numpy; PyTorch, JAX and CuPy
# are optional peers. Needs NO MLIR/LLVM and no package registry: the
# artifacts are compiled elsewhere with
#     .venv/bin/python bench/build_gpu_artifacts.py      (writes bench/artifacts/)
# and bench/artifacts/ is carried along with the checkout.
#
# Steps: (1) the launcher's GPU tests, (2)-(4) bench/gpu_bench.py: results
# against numpy float64, timings next to PyTorch eager / torch.compile /
# jax.jit(jax.vjp), and bandwidth as a fraction of measured copy bandwidth.
# Logs, JSON and the markdown table go to $OUT (default bench/out/).
# Exit status: 0 when the tests and ferrule's checks pass.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # JAX shares the GPU with torch
export PYTHONUNBUFFERED=1

if [ ! -f bench/artifacts/manifest.json ]; then
    echo "no bench/artifacts/manifest.json: run bench/build_gpu_artifacts.py where MLIR" \
         "is installed and carry bench/artifacts/ here" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv | tee "$OUT/nvidia-smi.txt"
"$PY" - <<'PYEOF' | tee "$OUT/versions.txt"
import sys, importlib
print("python", sys.version.split()[0])
for m in ("numpy", "torch", "jax", "jaxlib", "cupy", "pytest"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "absent:", type(e).__name__)
PYEOF

echo "== (1) launcher tests on the GPU"
if "$PY" -c "import pytest" 2>/dev/null; then
    "$PY" -m pytest -q -rs -p no:cacheprovider tests/cuda/test_cuda_launcher.py 2>&1 \
        | tee "$OUT/launcher_tests.log"
else
    "$PY" tests/cuda/test_cuda_launcher.py 2>&1 | tee "$OUT/launcher_tests.log"
fi
rc_tests=$?

echo "== (2)-(4) correctness, timings, bandwidth"
"$PY" bench/gpu_bench.py --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md" "$@" \
    2>&1 | tee "$OUT/gpu_bench.log"
rc_bench=$?

echo "== done: tests rc=$rc_tests, bench rc=$rc_bench; results in $OUT/"
[ "$rc_tests" -eq 0 ] && [ "$rc_bench" -eq 0 ]

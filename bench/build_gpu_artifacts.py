"""Compile the GPU benchmark and test artifacts (runs where MLIR is: here).

    .venv/bin/python bench/build_gpu_artifacts.py [--target sm_90] [--out bench/artifacts]

Writes, under ``--out`` (git-ignored; carry it to the GPU machine):

* ``{cell}_fb_{B}x{H}.json`` — forward + backward of the LSTM and GRU cells'
  pointwise part at B×H = 4096×4096 and 16384×4096 (float32);
* ``mlp_step_{B}x{H}.json`` — loss and weight gradients of a 2-layer MLP
  (``value_and_grad``) at B×H = 4096×1024: matmuls, pointwise code and a
  loss reduction;
* ``tests/*.json`` — small artifacts for tests/cuda/test_cuda_launcher.py;
* ``manifest.json`` — what each artifact is (cell, shapes, argument roles).

Where the MLIR comes from: :func:`cell_source` traces the cells with
ferrule's frontend (``ferrule.jit`` + ``ferrule.vjp``) and takes the
tensor-level IR after the AD passes (stage "ad"). To benchmark other IR
(hand-written, or a newer frontend's), replace that one function: it must
return ``(module_text, func_name)`` for a function whose arguments and
results follow ``tests/cuda/cuda_cases.CELLS`` (LSTM: ``(G, c, dh, dc) ->
(h, c2, dG, dc_prev)``; GRU: ``(x, h, dout) -> (out, dx, dh)``).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cuda"))
sys.path.insert(0, str(ROOT / "tests"))

import cuda_cases  # noqa: E402

SHAPES = [(4096, 4096), (16384, 4096)]
# The MLP training step (B×H inputs, H×H and H×H/4 weights): matmul-bound.
MLP_SHAPES = [(4096, 1024)]


def ferrule_cells():
    """The cells written against ferrule's numpy API (imported lazily: the
    frontend pulls in MLIR)."""
    import ferrule
    import ferrule.numpy as fnp
    from models import gru_fb, lstm_fb    # tests/models.py: the cells the suites check

    def mlp_loss(w1, w2, x, y):
        return fnp.mean((fnp.tanh(x @ w1) @ w2 - y) ** 2)

    return {"lstm": lstm_fb, "gru": gru_fb,
            "mlp": ferrule.value_and_grad(mlp_loss, argnums=(0, 1))}


def cell_source(cell: str, B: int, H: int, dtype=np.float32):
    """(tensor-level MLIR text, function name) of ``cell``'s forward+backward.

    Swap point: see the module docstring.
    """
    import ferrule
    shapes = {**cuda_cases.CELLS, **cuda_cases.TRAINING}[cell][0](B, H)
    # Only shapes and dtypes matter for tracing: zero-strided stand-ins.
    args = [np.broadcast_to(dtype(0), s) for s in shapes]
    low = ferrule.jit(ferrule_cells()[cell]).lower(*args)
    return low.as_text("ad"), low.name


# The artifacts tests/cuda/test_cuda_launcher.py loads: name -> () -> (MLIR, func, fast_math).
TEST_ARTIFACTS = {
    "lstm_forward_37x29": lambda: (cuda_cases.lstm_forward_mlir(37, 29), "lstm", False),
    "lstm_forward_37x29_fast": lambda: (cuda_cases.lstm_forward_mlir(37, 29), "lstm", True),
    "lstm_forward_64x32": lambda: (cuda_cases.lstm_forward_mlir(64, 32), "lstm", False),
    "mix": lambda: (cuda_cases.MIX_MLIR, "mix", False),
    "lstm_fb_64x32": lambda: (*cell_source("lstm", 64, 32), False),
    "gru_fb_48x40": lambda: (*cell_source("gru", 48, 40), False),
    "gru_fb_48x40_f64": lambda: (*cell_source("gru", 48, 40, np.float64), False),
}


def _build(mlir: str, name: str, path: Path, target: str, fast_math=False) -> dict:
    from ferrule.dialect.context import make_context
    from ferrule.runtime.cuda_compile import compile_cuda
    t = time.perf_counter()
    prog = compile_cuda(mlir, name, make_context(), target=target, fast_math=fast_math)
    prog.save(path)
    took = time.perf_counter() - t
    kinds = [k["kind"] for k in prog.kernels.values()]
    spills = sum(k.get("spill_stores", 0) + k.get("spill_loads", 0)
                 for k in prog.kernels.values())
    print(f"{path.name:28} {len(kinds)} kernels {kinds}, cubin={'yes' if prog.cubin else 'no'}, "
          f"spills={spills} B, {took:.2f} s")
    return {"file": str(path.name), "kernels": kinds, "cubin": prog.cubin is not None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="sm_90")
    ap.add_argument("--out", default=str(ROOT / "bench" / "artifacts"))
    ap.add_argument("--shapes", default=",".join(f"{b}x{h}" for b, h in SHAPES),
                    help="comma-separated BxH list")
    ap.add_argument("--no-training", action="store_true",
                    help="skip the MLP training-step benchmark")
    a = ap.parse_args(argv)
    out = Path(a.out)
    (out / "tests").mkdir(parents=True, exist_ok=True)
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",") if s]
    manifest = {"target": a.target, "benchmarks": [], "tests": {}}
    for cell in cuda_cases.CELLS:
        for B, H in shapes:
            mlir, name = cell_source(cell, B, H)
            entry = _build(mlir, name, out / f"{cell}_fb_{B}x{H}.json", a.target)
            entry.update(cell=cell, B=B, H=H, dtype="float32")
            manifest["benchmarks"].append(entry)
    for B, H in MLP_SHAPES if not a.no_training else []:
        mlir, name = cell_source("mlp", B, H)
        entry = _build(mlir, name, out / f"mlp_step_{B}x{H}.json", a.target)
        entry.update(cell="mlp", B=B, H=H, dtype="float32",
                     flops=cuda_cases.mlp_flops(B, H))
        manifest["benchmarks"].append(entry)
    for tname, make in TEST_ARTIFACTS.items():
        mlir, fname, fast = make()
        manifest["tests"][tname] = _build(mlir, fname, out / "tests" / f"{tname}.json",
                                          a.target, fast_math=fast)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {out}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

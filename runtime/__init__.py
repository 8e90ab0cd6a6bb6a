"""ferrule.runtime: from tensor-level MLIR to running code, one subpackage per target.

* :mod:`.pipelines` — every pipeline (CPU and GPU) as named lists of passes;
* :mod:`.signature` — the calling convention shared by the targets
  (:class:`~.signature.TensorSpec`, read-only inputs, caller-allocated
  outputs);
* :mod:`.llvm_translate` — MLIR's LLVM dialect -> LLVM IR, for both targets;
* :mod:`.cpu` — compile for the host and run (:func:`.cpu.compile_function`);
* :mod:`.cuda_compile` — compile for NVIDIA GPUs into an artifact (needs MLIR,
  no GPU);
* :mod:`.cuda` — the launcher that runs artifacts (numpy and the NVIDIA
  driver only: no MLIR, no LLVM).

Nothing here imports the frontend; passes are reached only by name through
:mod:`.pipelines`. Subpackages load on first use, so
``from ferrule.runtime import cuda`` imports neither MLIR nor LLVM.
"""

import importlib

_SUBMODULES = {"cpu", "cuda", "cuda_compile", "llvm_translate", "pipelines", "signature"}


def __getattr__(name):
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'ferrule.runtime' has no attribute {name!r}")
    return importlib.import_module(f".{name}", __name__)


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)

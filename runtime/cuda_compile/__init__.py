"""The CUDA compile side: a tensor-level function -> PTX, cubin and a launch
plan, saved as one artifact; needs MLIR and llvmlite, but no GPU.

* :mod:`.program` — :func:`compile_cuda` and :class:`CudaProgram` (the stages
  and the artifact);
* :mod:`.mapping` — loop nests -> ``gpu.launch`` (with :mod:`.launch_ir`'s
  building blocks, :mod:`.reduce` for reductions, :mod:`.vectorize` for
  16-byte lanes);
* :mod:`.hostplan` — the host side of the outlined module as plain data;
* :mod:`.target` — target validation, LLVM IR -> PTX, ``ptxas``;
* :mod:`.fast_math` — the ``fast_math=True`` choices.

The artifact runs with :mod:`ferrule.runtime.cuda`, the MLIR-free launcher.
"""

from .program import STAGES, CudaProgram, compile_cuda
from .target import CudaTarget, parse_target

__all__ = ["compile_cuda", "CudaProgram", "STAGES", "CudaTarget", "parse_target"]

"""The CPU target: compile a tensor-level function for the host and run it.

* :func:`compile_function` — the one entry point: lowering (the CPU pipeline,
  LLVM IR, llvmlite), the run policy (one thread, or row chunks on several)
  and the callable (:mod:`.compile`);
* :class:`CpuOptions` and its process-wide defaults (:mod:`.options`);
* :class:`CpuFunction` / :class:`RowSplitFunction` — the callables
  (:mod:`.function`); :mod:`.codegen` — llvmlite JIT, the host's vector
  width and the narrow-float conversions it lacks; :mod:`.rowsplit` / :mod:`.row_layouts` — splitting over rows.
"""

from .codegen import host_narrow_conversions
from .compile import compile_function, lower_to_llvm_ir
from .function import CpuFunction, RowSplitFunction, symbol_for
from .options import CpuOptions, defaults, set_defaults, using

__all__ = ["compile_function", "lower_to_llvm_ir", "CpuFunction", "RowSplitFunction",
           "symbol_for", "CpuOptions", "defaults", "set_defaults", "using",
           "host_narrow_conversions"]

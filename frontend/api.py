"""``ferrule.jit``: trace, differentiate (passes), compile, call.

Stages of one specialisation (``Lowered.as_text(stage)``):
  * ``"traced"``  — the function as traced: upstream ops on tensors plus ``ad``
    ops where ``grad``/``vjp``/``jvp`` were used;
  * ``"ad"``      — after the AD pipeline: only upstream dialects, pointwise
    code fused into regions;
  * ``"llvm"``    — the LLVM dialect after the CPU lowering pipeline;
  * ``"llvm-ir"`` — LLVM IR handed to llvmlite.
"""

import functools
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from mlir import ir

from .dialect import VerificationError, make_context, verify_module
from .passes import PassError, run_pipeline
from .runtime import cpu, pipelines
from .errors import CompileError, DTypeError, TracingError
from .tracing import current_trace, flatten, mlir_element_type, trace_into, unflatten


def _arg_spec(x):
    """A leaf's role: an array spec (shape, dtype) or a static Python value."""
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if a.dtype not in (np.float32, np.float64):
            raise DTypeError(
                f"ferrule.jit: argument of dtype {a.dtype} is not supported; ferrule "
                f"compiles float32 and float64 arrays (use x.astype(np.float32))")
        return ("array", a.shape, a.dtype.str)
    if isinstance(x, (bool, int, float, str, type(None))):
        return ("static", x)
    if hasattr(x, "__array__"):
        return _arg_spec(np.asarray(x))
    raise TypeError(f"ferrule.jit: cannot pass {type(x).__name__} to a jitted function; "
                    f"use numpy arrays, Python scalars, or tuples/lists of them")


class Lowered:
    """One specialisation's IR at each stage, and its compiled function."""

    def __init__(self, name: str, ctx: ir.Context, traced: str, out_struct,
                 timings: Dict[str, float]):
        self.name = name
        self._ctx = ctx
        self.out_struct = out_struct
        self.timings = dict(timings)
        self._stages: Dict[str, str] = {"traced": traced}
        self._compiled: Optional[cpu.CpuFunction] = None

    def _run_ad(self):
        if "ad" in self._stages:
            return
        t = time.perf_counter()
        with self._ctx, ir.Location.unknown():
            module = ir.Module.parse(self._stages["traced"])
            try:
                run_pipeline(module, pipelines.AD)
            except PassError as e:
                raise CompileError(str(e)) from None
            self._stages["ad"] = str(module)
        self.timings["ad_passes"] = time.perf_counter() - t

    def as_text(self, stage: str = "traced") -> str:
        """The IR at ``stage``: "traced", "ad", "llvm" or "llvm-ir"."""
        if stage not in ("traced", "ad", "llvm", "llvm-ir"):
            raise ValueError(f"unknown stage {stage!r}; stages are traced, ad, llvm, llvm-ir")
        if stage == "ad":
            self._run_ad()
        elif stage in ("llvm", "llvm-ir"):
            self.compile()
        return self._stages[stage]

    def explain(self) -> str:
        """Per call site: which rule or built-in mode differentiated it, whether
        forward mode ran, and what is kept between forward and backward."""
        from .report import explain
        return explain(self._stages["traced"], self._ctx)

    def compile(self) -> cpu.CpuFunction:
        if self._compiled is None:
            self._run_ad()
            t = time.perf_counter()
            try:
                ll_mlir, ll_ir = cpu.lower_to_llvm_ir(self._stages["ad"], self.name, self._ctx)
            except (ir.MLIRError, PassError) as e:
                raise CompileError(f"lowering {self.name} failed: {e}") from None
            self._stages["llvm"], self._stages["llvm-ir"] = ll_mlir, ll_ir
            self.timings["lowering"] = time.perf_counter() - t
            with self._ctx:
                ins, outs = cpu.function_specs(ir.Module.parse(self._stages["ad"]), self.name)
            t = time.perf_counter()
            self._compiled = cpu.CpuFunction(ll_ir, self.name, ins, outs)
            self.timings["codegen"] = time.perf_counter() - t
        return self._compiled


class Jitted:
    """A function compiled per signature (shapes, dtypes, static values)."""

    def __init__(self, fun, static_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.static_argnums = tuple(static_argnums)
        self._cache: Dict[Any, Lowered] = {}

    def _key(self, args):
        leaves, struct = flatten(list(args))
        specs = tuple(_arg_spec(l) for l in leaves)
        return (specs, repr(struct)), leaves, struct

    def lower(self, *args) -> Lowered:
        """Trace for these arguments; returns the :class:`Lowered` stages."""
        key, leaves, struct = self._key(args)
        low = self._cache.get(key)
        if low is not None:
            return low
        t0 = time.perf_counter()
        ctx = make_context()
        with ctx, ir.Location.unknown():
            module = ir.Module.create()
            arg_leaves = []
            for l, spec in zip(leaves, key[0]):
                if spec[0] == "array":
                    arg_leaves.append(ir.RankedTensorType.get(
                        list(spec[1]), mlir_element_type(np.dtype(spec[2]))))
                else:
                    arg_leaves.append(l)
            tree = unflatten(struct, arg_leaves)
            name, out_struct, _ = trace_into(module, self.fun, tuple(tree),
                                             getattr(self.fun, "__name__", "fn"))
            try:
                verify_module(module)
            except (VerificationError, ir.MLIRError) as e:
                raise TracingError(f"internal: traced IR of {name} does not verify: {e}") from None
            traced = str(module.operation.get_asm(enable_debug_info=True))
        low = Lowered(name, ctx, traced, out_struct, {"trace": time.perf_counter() - t0})
        self._cache[key] = low
        return low

    def __call__(self, *args, out=None):
        if current_trace() is not None:  # nested in another trace: inline
            return self.fun(*args)
        low = self.lower(*args)
        fn = low.compile()
        leaves, _ = flatten(list(args))
        arrays = [np.asarray(l) for l in leaves if _arg_spec(l)[0] == "array"]
        outs = fn(*arrays, out=out)
        return unflatten(low.out_struct, list(outs))


def jit(fun=None, *, static_argnums: Sequence[int] = ()):
    """Compile ``fun`` for the CPU, specialised on argument shapes and dtypes.

    ``jit(f)(*args)`` traces ``f`` once per signature (array shapes/dtypes and
    the values of Python scalars, which are static), runs the AD and lowering
    pipelines, and calls native code. ``jit(f).lower(*args).as_text(stage)``
    shows the IR. Calls may pass ``out=`` (a tuple of preallocated arrays,
    one per output) to reuse output buffers.
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums)
    return Jitted(fun, static_argnums)

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
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mlir import ir

from .dialect import VerificationError, make_context, verify_module
from .passes import PassError, run_pipeline
from .runtime import cpu, pipelines, rowsplit
from .errors import CompileError, DTypeError, TracingError
from .tracing import (current_trace, flatten, mlir_element_type, trace_into, unflatten,
                      where_str)


class StaticArg:
    """An argument marked static: baked into the trace, part of the cache key."""

    def __init__(self, value):
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"static arguments must be hashable; got "
                            f"{type(value).__name__}") from None
        self.value = value


def _arg_index(args, leaf_pos: int) -> int:
    """The positional argument that holds flattened leaf number ``leaf_pos``."""
    n = 0
    for k, a in enumerate(args):
        n += len(flatten(a)[0])
        if leaf_pos < n:
            return k
    return len(args) - 1


class ShapeDtype:
    """An argument described by shape and dtype only, for compiling ahead of
    time without arrays: ``ferrule.compile(f, ShapeDtype((4096, 4096)), ...)``."""

    def __init__(self, shape, dtype=np.float32):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"ShapeDtype({self.shape}, {self.dtype})"


def _arg_spec(x):
    """A leaf's role: an array spec (shape, dtype) or a static Python value."""
    if isinstance(x, StaticArg):
        return ("static", type(x.value).__name__, x.value)
    if hasattr(x, "__cuda_array_interface__"):  # CuPy / PyTorch CUDA arrays
        cai = x.__cuda_array_interface__
        x = ShapeDtype(cai["shape"], np.dtype(cai["typestr"]))
    if isinstance(x, ShapeDtype):
        if x.dtype not in (np.float32, np.float64):
            raise DTypeError(f"ferrule: ShapeDtype of dtype {x.dtype} is not supported; "
                             f"use float32 or float64")
        return ("array", x.shape, x.dtype.str)
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if a.dtype not in (np.float32, np.float64):
            raise DTypeError(
                f"argument of dtype {a.dtype} is not supported; ferrule compiles "
                f"float32 and float64 arrays (use x.astype(np.float32))")
        return ("array", a.shape, a.dtype.str)
    if isinstance(x, (bool, int, float, str, type(None))):
        return ("static", type(x).__name__, x)  # 1, 1.0 and True differ
    if hasattr(x, "__array__"):
        return _arg_spec(np.asarray(x))
    raise TypeError(f"ferrule.jit: cannot pass {type(x).__name__} to a jitted function; "
                    f"use numpy arrays, Python scalars, or tuples/lists of them")


class Lowered:
    """One specialisation's IR at each stage, and its compiled function.

    ``out_shapes``: the results as :class:`ShapeDtype`, in the results'
    structure — known once traced, before anything is compiled (what
    ``ferrule.torch``/``ferrule.jax`` tell their frameworks about a call).
    """

    def __init__(self, name: str, ctx: ir.Context, traced: str, out_struct,
                 timings: Dict[str, float], pullback: str = "auto"):
        self.name = name
        self.pullback = pullback
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
                run_pipeline(module, pipelines.ad_pipeline(self.pullback))
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

    def compile_cuda(self, target: str = "cuda:sm_90", fast_math: bool = False):
        """Compile this specialisation for an NVIDIA GPU (see :func:`compile`)."""
        from .runtime.cuda_compile import compile_cuda  # imported only when used
        self._run_ad()
        tgt = "sm_90" if target == "cuda" else target
        try:
            prog = compile_cuda(self._stages["ad"], self.name, self._ctx, target=tgt,
                                fast_math=fast_math)
        except (ir.MLIRError, PassError) as e:
            raise CompileError(f"GPU lowering of {self.name} failed: {e}") from None
        return CudaCompiled(self, prog)

    def explain(self) -> str:
        """Per call site: which rule or built-in mode differentiated it, whether
        forward mode ran, and what is kept between forward and backward."""
        from .report import explain
        self._run_ad()
        text = explain(self._stages["traced"], self._ctx, self._stages["ad"])
        if getattr(self, "threads_note", None):
            text += f"\nCPU: {self.threads_note}"
        return text

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
            self._compiled = self._row_split(ins, outs) or cpu.CpuFunction(
                ll_ir, self.name, ins, outs)
            self.timings["codegen"] = time.perf_counter() - t
        return self._compiled

    def _row_split(self, ins, outs):
        """A :class:`~ferrule.runtime.cpu.RowSplitFunction` over the CPU's
        cores when the function is row-separable and large enough; else None
        (``self.threads_note`` says why)."""
        threads = _num_threads()
        size = sum(int(np.prod(s.shape, dtype=np.int64)) for s in [*ins, *outs])
        if threads < 2:
            self.threads_note = "1 thread (FERRULE_NUM_THREADS or the CPU count is 1)"
            return None
        if size < _ROW_SPLIT_MIN_ELEMENTS:
            self.threads_note = f"1 thread ({size} elements: too small to split)"
            return None
        plan, why = rowsplit.plan_split(self._stages["ad"], self.name, self._ctx)
        if plan is None:
            self.threads_note = f"1 thread (not splittable over rows: {why})"
            return None
        sums = sum(1 for lay in plan["results"] if lay == "sum")
        if sums and plan["rows"] // threads < _MIN_ROWS_PER_CHUNK_WITH_SUMS:
            # Each chunk writes a full copy of every summed result (a weight
            # gradient) to be added up: worth it only for enough rows.
            self.threads_note = (f"1 thread ({plan['rows']} rows: too few to split a function "
                                 f"whose results are summed over the chunks)")
            return None
        n = plan["rows"]
        threads = min(threads, n)
        bounds = [n * k // threads for k in range(threads + 1)]
        sizes = {hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])}
        compiled = {}
        for rows in sizes:
            text = rowsplit.chunk_module(self._stages["ad"], self.name, self._ctx, rows, plan)
            _, ll = cpu.lower_to_llvm_ir(text, self.name, self._ctx)
            with self._ctx:
                cins, couts = cpu.function_specs(ir.Module.parse(text), self.name)
            compiled[rows] = cpu.CpuFunction(ll, self.name, cins, couts)
        self.threads_note = (f"{threads} threads over row chunks of {sorted(sizes)} rows"
                             + (f"; {sums} result(s) summed over the chunks" if sums else ""))
        return cpu.RowSplitFunction(
            _Specs(ins, outs, self.name),
            [(lo, hi, compiled[hi - lo]) for lo, hi in zip(bounds[:-1], bounds[1:])], plan)


# Below this many elements (inputs + outputs) a call is too short for threads.
_ROW_SPLIT_MIN_ELEMENTS = 1 << 20   # a thread-pool round trip costs ~50-80 us
# A function with results summed over the chunks (weight gradients: each
# chunk writes a full copy to be added) is split only into chunks of at
# least this many rows. Measured (2 cores, an MLP step with 784x1024
# weights): 128-row chunks already run 1.8x faster than one thread.
_MIN_ROWS_PER_CHUNK_WITH_SUMS = 32


def _num_threads() -> int:
    import os
    env = os.environ.get("FERRULE_NUM_THREADS", "")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"FERRULE_NUM_THREADS must be an integer, got {env!r}") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Specs:
    def __init__(self, inputs, outputs, name):
        self.inputs, self.outputs, self.func_name = inputs, outputs, name


class Jitted:
    """A function compiled per signature (shapes, dtypes, static values)."""

    def __init__(self, fun, static_argnums: Sequence[int] = (), target: str = "cpu",
                 pullback: str = "auto"):
        functools.update_wrapper(self, fun)
        self.fun = fun
        if pullback not in ("auto", "recompute", "store"):
            raise ValueError(f"pullback must be 'auto', 'recompute' or 'store'; got {pullback!r}")
        self.pullback = pullback
        self.static_argnums = tuple(static_argnums)
        self.target = _check_target(target)
        self._cache: Dict[Any, Lowered] = {}
        self._gpu: Dict[Any, Any] = {}

    def _key(self, args):
        """(cache key, leaves, structure); arguments in ``static_argnums`` are
        part of the key by value (they must be hashable) and not traced."""
        for k in self.static_argnums:
            if not -len(args) <= k < len(args):
                raise TypeError(f"{self.__name__}: static_argnums {k} out of range for "
                                f"{len(args)} arguments")
        static = {k % len(args) for k in self.static_argnums}
        dyn = [StaticArg(a) if k in static else a for k, a in enumerate(args)]
        leaves, struct = flatten(dyn)
        specs = []
        for pos, l in enumerate(leaves):
            try:
                specs.append(_arg_spec(l))
            except DTypeError as e:
                raise DTypeError(f"{where_str()}: {self.__name__}: argument {_arg_index(args, pos)}: "
                                 f"{e}") from None
        return (tuple(specs), repr(struct)), leaves, struct

    def lower(self, *args) -> Lowered:
        """Trace for these arguments; returns the :class:`Lowered` stages."""
        key, leaves, struct = self._key(args)
        low = self._cache.get(key)
        if low is not None:
            return low
        return self._lower(key, leaves, struct)

    def _lower(self, key, leaves, struct) -> Lowered:
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
                    arg_leaves.append(l.value if isinstance(l, StaticArg) else l)
            tree = unflatten(struct, arg_leaves)
            name, out_struct, out_types = trace_into(module, self.fun, tuple(tree),
                                                     getattr(self.fun, "__name__", "fn"))
            out_shapes = [ShapeDtype(s.shape, s.dtype)
                          for s in map(cpu.TensorSpec.of_type, out_types)]
            try:
                verify_module(module)
            except (VerificationError, ir.MLIRError) as e:
                raise TracingError(f"internal: traced IR of {name} does not verify: {e}") from None
            traced = str(module.operation.get_asm(enable_debug_info=True))
        low = Lowered(name, ctx, traced, out_struct, {"trace": time.perf_counter() - t0},
                      self.pullback)
        low.out_shapes = unflatten(out_struct, out_shapes)
        self._cache[key] = low
        return low

    def __call__(self, *args, out=None):
        if current_trace() is not None:  # nested in another trace: inline
            return self.fun(*args)
        key, leaves, struct = self._key(args)
        low = self._cache.get(key) or self._lower(key, leaves, struct)
        arrays = [l for l, spec in zip(leaves, key[0]) if spec[0] == "array"]
        if self.target != "cpu":
            if key not in self._gpu:
                self._gpu[key] = low.compile_cuda(self.target).load()
            return unflatten(low.out_struct, list(self._gpu[key](*arrays, out=out)))
        outs = low.compile()(*arrays, out=out)
        return unflatten(low.out_struct, list(outs))


def _check_target(target: str) -> str:
    if target == "cpu" or target == "cuda" or target.startswith("cuda:"):
        return target
    raise ValueError(f"unknown target {target!r}; use 'cpu', 'cuda' or 'cuda:sm_XX'")


def jit(fun=None, *, static_argnums: Sequence[int] = (), target: str = "cpu",
        pullback: str = "auto"):
    """Compile ``fun`` for the CPU, specialised on argument shapes and dtypes.

    ``jit(f)(*args)`` traces ``f`` once per signature (array shapes/dtypes and
    the values of Python scalars, which are static), runs the AD and lowering
    pipelines, and calls native code. ``jit(f).lower(*args).as_text(stage)``
    shows the IR. Calls may pass ``out=`` (a tuple of preallocated arrays,
    one per output) to reuse output buffers. ``pullback`` chooses how reverse
    mode differentiates pointwise regions: ``"auto"`` (a bytes-moved cost
    model), ``"recompute"`` (re-evaluate from the inputs) or ``"store"``
    (keep the partials); ``explain()`` reports each choice.
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums, target=target,
                                 pullback=pullback)
    return Jitted(fun, static_argnums, target, pullback)


def compile(fun, *example_args, target: str = "cuda:sm_90", fast_math: bool = False):
    """Compile ``fun`` ahead of time for ``example_args`` (arrays or
    :class:`ShapeDtype`). ``target="cuda:sm_XX"`` returns a
    :class:`~ferrule.runtime.cuda_compile.CudaProgram`-backed
    :class:`CudaCompiled` (``.ptx``, ``.save(path)``, ``.as_text(stage)``),
    built on any machine — no GPU needed; ``target="cpu"`` returns the CPU
    function. Invalid targets raise ``ValueError`` before LLVM sees them.
    """
    low = Jitted(fun).lower(*example_args)
    if _check_target(target) == "cpu":
        return low.compile()
    return low.compile_cuda(target, fast_math=fast_math)


class CudaCompiled:
    """A function compiled for an NVIDIA GPU: PTX, cubin, launch plan.

    ``as_text(stage)`` covers the frontend stages ("traced", "ad") and the GPU
    ones ("bufferized", "loops", "mapped", "gpu", "nvvm", "llvm", "llvm-opt",
    "ptx", "ptxas"). ``save(path)`` writes the one-file artifact that
    ``ferrule.runtime.cuda.load`` runs with only numpy and the driver.
    """

    def __init__(self, lowered: Lowered, program):
        self.lowered = lowered
        self.program = program

    ptx = property(lambda self: self.program.ptx)
    cubin = property(lambda self: self.program.cubin)
    kernels = property(lambda self: self.program.kernels)

    def as_text(self, stage: str = "ptx") -> str:
        if stage in ("traced", "ad"):
            return self.lowered.as_text(stage)
        return self.program.as_text(stage)

    def save(self, path) -> None:
        self.program.save(path)

    def load(self, device: int = 0):
        """Load onto a GPU of this machine (``CudaUnavailable`` if none)."""
        import os
        import tempfile

        from .runtime import cuda
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "artifact.json")
            self.save(path)
            return cuda.load(path, device)

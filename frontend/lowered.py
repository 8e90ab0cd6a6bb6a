"""One specialisation of a jitted function: :class:`Lowered` (its IR at
each stage, its CPU compilation, ``explain``) and :class:`CudaCompiled`
(the same compiled for an NVIDIA GPU).

Stages of one specialisation (``Lowered.as_text(stage)``):
  * ``"traced"``  — the function as traced: upstream ops on tensors plus ``ad``
    ops where ``grad``/``vjp``/``jvp`` were used;
  * ``"ad"``      — after the AD pipeline: only upstream dialects, pointwise
    code fused into regions;
  * ``"llvm"``    — the LLVM dialect after the CPU lowering pipeline;
  * ``"llvm-ir"`` — LLVM IR handed to llvmlite.
"""

import re
import threading
import time
from typing import Any, Dict, Optional, Sequence

from mlir import ir

from .dialect import make_context
from .errors import CompileError
from .passes import PassError, run_pipeline
from .pytree import flatten
from .report import explain as _explain
from .runtime import cpu, pipelines
from .runtime.cpu import CpuOptions, diskcache
from .runtime.cuda import GpuFunction
from .runtime.cuda_compile import compile_cuda
from .source_key import encode_struct

# A float16/bfloat16 element type in the traced IR (GPU targets refuse them).
_NARROW_TYPE = re.compile(r"[<x](b?f16)>")


class Lowered:
    """One specialisation's IR at each stage, and its compiled function.

    ``out_shapes``: the results as :class:`ShapeDtype`, in the results'
    structure — known once traced, before anything is compiled (what
    ``ferrule.torch``/``ferrule.jax`` tell their frameworks about a call).
    ``uint32_outs``: the positions of the results that are uint32 (``i32``
    in the IR: the compiled function's int32 arrays are viewed as uint32).
    """

    uint32_outs: Sequence[int] = ()
    # (resolved CPU options, source key) when the specialisation has a source
    # key (frontend/source_key.py): compiling for those options records it.
    _source = None

    def __init__(self, name: str, ctx: Optional[ir.Context], traced: Optional[str], out_struct,
                 timings: Dict[str, float], pullback: str = "auto", retrace=None):
        """``traced`` None (loaded from the disk cache by source key): the
        traced text is made by ``retrace()`` when a stage or other CPU
        options need it."""
        self.name = name
        self.pullback = pullback
        # No MLIR context is kept (the tracing one held ~2 MB per
        # specialisation): each stage is parsed into a fresh one from text.
        del ctx
        self.out_struct = out_struct
        self.timings = dict(timings)
        self._stages: Dict[str, str] = {} if traced is None else {"traced": traced}
        self._retrace = retrace
        self._compiled: Dict[CpuOptions, Any] = {}   # per CPU options
        self._lock = threading.RLock()    # one compilation at a time per context

    def _traced(self) -> str:
        """The traced module's text (traced now if it was loaded without)."""
        text = self._stages.get("traced")
        if text is None:
            with self._lock:
                if "traced" not in self._stages:
                    self._stages["traced"] = self._retrace()
            text = self._stages["traced"]
        return text

    def _run_ad(self):
        if "ad" in self._stages:
            return
        with self._lock:
            if "ad" not in self._stages:
                self._run_ad_locked()

    def _run_ad_locked(self):
        t = time.perf_counter()
        with make_context(), ir.Location.unknown():
            module = ir.Module.parse(self._traced())
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
            return self._llvm_stages()[stage]
        elif stage == "traced":
            return self._traced()
        return self._stages[stage]

    def compile_cuda(self, target: str = "cuda:sm_90", fast_math: bool = False):
        """Compile this specialisation for an NVIDIA GPU (see :func:`compile`)."""
        from .callback import callbacks_in
        found = callbacks_in(self._traced(), make_context())
        if found:
            name, at = found[0]
            raise CompileError(f"{self.name}: pure_callback {name!r} (at {at}) cannot run on "
                               f"target {target!r}: host callbacks are called from CPU code, "
                               f"and a GPU kernel cannot call into Python; compile for 'cpu'")
        if _NARROW_TYPE.search(self._stages["traced"]):
            raise CompileError(f"{self.name}: float16/bfloat16 arrays (arguments, results or "
                               f"astype) are CPU-only for now: target {target!r} does not "
                               f"compile them (its loads and stores of f16/bf16 are untested); "
                               f"convert to float32 first, or compile for 'cpu'")
        self._run_ad()
        if '"ad.scan"' in self._stages["ad"]:
            raise CompileError(f"{self.name}: ferrule.scan is not supported for target "
                               f"{target!r} yet (its loop runs on the host between kernels, "
                               f"which the GPU lowering does not build); compile for 'cpu'")
        if '"ad.gather"' in self._traced():
            raise CompileError(f"{self.name}: gathers (take, x[int_array], take_along_axis) "
                               f"and their derivatives are not supported for target "
                               f"{target!r} yet (untested on a GPU); compile for 'cpu'")
        tgt = "sm_90" if target == "cuda" else target
        try:
            prog = compile_cuda(self._stages["ad"], self.name, make_context(), target=tgt,
                                fast_math=fast_math)
        except (ir.MLIRError, PassError) as e:
            raise CompileError(f"GPU lowering of {self.name} failed: {e}") from None
        return CudaCompiled(self, prog)

    def explain(self) -> str:
        """Per call site: which rule or built-in mode differentiated it, whether
        forward mode ran, and what is kept between forward and backward."""
        self._run_ad()
        text = _explain(self._traced(), make_context(), self._stages["ad"])
        compiled = self._compiled.get(cpu.defaults())
        if compiled is not None:
            text += f"\nCPU: {compiled.threads_note}"
        return text

    def compile(self, options: Optional[CpuOptions] = None):
        """The CPU function (:func:`ferrule.runtime.cpu.compile_function`),
        compiled once per ``options`` (default: :func:`ferrule.runtime.cpu.defaults`).

        With a disk cache (``FERRULE_CACHE_DIR``), a specialisation compiled
        before — in any process — is loaded from it instead: no AD pass, no
        lowering, no LLVM (:mod:`ferrule.runtime.cpu.diskcache`).
        Thread-safe: threads asking at once compile once."""
        options = options or cpu.defaults()
        fn = self._compiled.get(options)
        if fn is None:
            with self._lock:
                fn = self._compiled.get(options)
                if fn is None:
                    fn = self._compile_cpu(options)
        return fn

    def _compile_cpu(self, options: CpuOptions):
        t = time.perf_counter()
        key = (diskcache.key(self._traced(), self.name, self.pullback,
                             options.resolved()) if diskcache.enabled() else None)
        fn = diskcache.load(key, self.name) if key else None
        if fn is not None:
            fn.timings = {"disk_cache_load": time.perf_counter() - t}
        else:
            self._run_ad()
            try:
                # A context of its own, freed with everything the lowering
                # uniqued in it (megabytes that this Lowered would keep).
                fn = cpu.compile_function(self._stages["ad"], self.name, make_context(),
                                          options)
            except (ir.MLIRError, PassError) as e:
                raise CompileError(f"lowering {self.name} failed: {e}") from None
            if key:
                diskcache.store(key, fn)
        if key and self._source is not None and self._source[0] == options.resolved():
            self._record_source(key)
        self._compiled[options] = fn
        self.timings.update(fn.timings)
        return fn

    def _record_source(self, key: str) -> None:
        """Map this specialisation's source key to its disk cache entry, with
        what a warm call needs of the trace (:meth:`Jitted._load_warm`).
        Not for a program with host callbacks: their numbers are given by
        each process's traces (runtime/cpu/callbacks.py)."""
        if '"ad.pure_callback"' in self._traced():
            return
        try:
            meta = {"name": self.name, "struct": encode_struct(self.out_struct),
                    "outs": [[list(s.shape), s.dtype.str]
                             for s in flatten(self.out_shapes)[0]],
                    "uint32_outs": list(self.uint32_outs)}
        except ValueError:      # a result structure that JSON cannot name
            return
        diskcache.store_source(self._source[1], key, meta)

    def _llvm_stages(self, options: Optional[CpuOptions] = None) -> Dict[str, str]:
        fn = self.compile(options)
        if fn.stages is None:     # not kept (memory) or loaded from disk: lower again
            self._run_ad()
            with self._lock:
                opts = (options or cpu.defaults()).resolved()
                ll_mlir, ll_ir = cpu.lower_to_llvm_ir(
                    self._stages["ad"], self.name, make_context(),
                    vector_bytes=opts.vector_bytes, narrow_conversions=opts.narrow_conversions)
                fn.stages = {"llvm": ll_mlir, "llvm-ir": ll_ir}
        return fn.stages


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
        return GpuFunction(self.program.to_artifact(), device)

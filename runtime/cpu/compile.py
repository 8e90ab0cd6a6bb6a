"""Compile a tensor-level MLIR function for the host CPU: one call.

:func:`compile_function` lowers the function (:func:`lower_to_llvm_ir`: the
CPU pipeline of :mod:`ferrule.runtime.pipelines`, then LLVM IR), decides how
it runs — the run policy: on one thread, or split over row chunks on
several (:mod:`.rowsplit`) when it is row-separable and large enough — and
returns the callable.
"""

import functools
import time
from typing import Optional, Tuple

import numpy as np
from mlir import ir

from ...dialect.ir_utils import find_func
from ...passes import run_pipeline
from .. import pipelines
from ..llvm_translate import translate_to_llvm_ir
from ..signature import Signature, function_signature, mark_inputs_readonly
from . import rowsplit
from .codegen import host_narrow_conversions, host_vector_bytes
from .function import CpuFunction, RowSplitFunction, symbol_for
from .options import CpuOptions, defaults


def lower_to_llvm_ir(module_text: str, func_name: str, ctx: ir.Context,
                     on_stage=None, vector_bytes: Optional[int] = None,
                     dialect_text: bool = True,
                     narrow_conversions: Optional[str] = None,
                     team_threads: int = 1) -> Tuple[Optional[str], str]:
    """Lower a tensor-level module to (LLVM-dialect MLIR text, LLVM IR text),
    for ``vector_bytes``-wide vectors (default: the host's), with the
    float16/bfloat16 conversions ``narrow_conversions`` written out
    (default: those the host has no instructions for; CpuOptions), and its
    large matmuls on teams of ``team_threads`` threads
    (the code then calls libgomp: :func:`~.codegen.openmp_runtime`).
    ``dialect_text=False``: the first is None (printing it takes longer
    than translating it to LLVM IR).

    The function is exported as :func:`~.function.symbol_for` ``(func_name)``.
    """
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        mark_inputs_readonly(module, func_name)
        find_func(module, func_name).attributes["sym_name"] = ir.StringAttr.get(
            symbol_for(func_name))
        narrow = host_narrow_conversions() if narrow_conversions is None else narrow_conversions
        run_pipeline(module, pipelines.cpu_lowering(vector_bytes or host_vector_bytes(), narrow,
                                                    team_threads),
                     on_stage=on_stage)
        llvm_dialect = str(module) if dialect_text else None
        return llvm_dialect, translate_to_llvm_ir(module.operation)


def compile_function(module_text: str, func_name: str, ctx: ir.Context,
                     options: Optional[CpuOptions] = None):
    """``func_name`` of a tensor-level module as a callable on numpy arrays:
    a :class:`~.function.CpuFunction`, or a :class:`~.function.RowSplitFunction`
    over the CPU's cores when the function is row-separable and large enough
    (``options``, default :func:`~.options.defaults`).

    The callable also carries ``stages`` (None: the LLVM stages of the whole
    function are lowered again only when asked for, by
    :meth:`ferrule.Lowered.as_text` — neither is kept, for their memory and
    the time to print them), ``threads_note`` (how it runs, and why) and
    ``timings`` (``lowering``, ``codegen``: s). Memory the compilation
    freed is handed back to the system (``malloc_trim``, glibc).
    """
    opts = (options or defaults()).resolved()
    keep_freed_pages()
    with ctx:
        sig = function_signature(ir.Module.parse(module_text), func_name)
    start = time.perf_counter()
    lowering = [0.0]      # seconds in the MLIR pipeline and translation
    fn, note = _row_split(module_text, sig, ctx, opts, lowering)
    if fn is None:
        t = time.perf_counter()
        _, ll_ir = lower_to_llvm_ir(module_text, func_name, ctx,
                                    vector_bytes=opts.vector_bytes, dialect_text=False,
                                    narrow_conversions=opts.narrow_conversions,
                                    team_threads=opts.team_threads)
        if opts.team_threads > 1:
            note += f"; its large matmuls on a team of {opts.team_threads} threads"
        lowering[0] += time.perf_counter() - t
        fn = CpuFunction(ll_ir, func_name, sig.inputs, sig.outputs)
    fn.stages = None
    fn.threads_note = note
    fn.timings = {"lowering": lowering[0],
                  "codegen": time.perf_counter() - start - lowering[0]}
    release_freed_memory()
    return fn


def keep_freed_pages() -> bool:
    """Let glibc's allocator keep freed blocks up to 32 MiB for reuse
    instead of returning them to the system at once (``mallopt``: mmap
    threshold at 32 MiB, trim threshold at :data:`TRIM_THRESHOLD`), once
    per process; ``FERRULE_KEEP_FREED_PAGES=0`` leaves the allocator alone.

    Why: compiled code allocates its temporaries with ``malloc`` on every
    call; above 128 KiB glibc maps fresh pages for each and unmaps them on
    ``free``, so every call page-faults its temporaries in again. Measured
    on the char-LSTM training step: 79 -> 58 ms of CPU per step (-25%).
    This is process-wide (numpy's large arrays are reused the same way);
    :func:`release_freed_memory` still hands free pages back after each
    compilation.

    The trim threshold is higher than the mmap one because a call's
    temporaries together (all below 32 MiB each) may exceed 32 MiB: freed
    at the call's end, they leave that much free at the top of the heap,
    which a 32 MiB threshold returned to the system — and the next call
    page-faulted it all in again. A process whose heap MLIR had grown
    (tracing) hid this; one that loads its code from the warm disk cache
    without tracing did not: the char-LSTM step (~32 MiB of temporaries)
    took 8,289 page faults and 50–60 ms per call instead of 0 and ~20.
    The cost: a process keeps freed heap up to its high-water mark (at
    most this threshold above what it uses), as caching allocators do.
    Returns whether the thresholds were set."""
    return _tune_malloc()


@functools.lru_cache(maxsize=1)
def _tune_malloc() -> bool:
    import ctypes
    import os
    if os.environ.get("FERRULE_KEEP_FREED_PAGES", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, LIMIT = -1, -3, 32 << 20
    return (bool(mallopt(M_MMAP_THRESHOLD, LIMIT))
            and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)))


# Free heap above this many bytes at its top is returned to the system
# (glibc's M_TRIM_THRESHOLD; see keep_freed_pages).
TRIM_THRESHOLD = 512 << 20


def release_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``):
    MLIR and LLVM free what a compilation allocated, but the allocator keeps
    it, and the process grows by ~1 MB per compilation otherwise."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    import ctypes
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _row_split(module_text: str, sig: Signature, ctx: ir.Context, opts: CpuOptions,
               lowering: list):
    """``(RowSplitFunction, note)`` when the function is worth splitting over
    row chunks, else ``(None, why not)``."""
    threads = opts.threads
    size = sum(int(np.prod(s.shape, dtype=np.int64)) for s in [*sig.inputs, *sig.outputs])
    if threads < 2:
        return None, "1 thread (FERRULE_NUM_THREADS or the CPU count is 1)"
    if size < opts.split_min_elements:
        return None, f"1 thread ({size} elements: too small to split)"
    plan, why = rowsplit.plan_split(module_text, sig.func_name, ctx)
    if plan is None:
        return None, f"1 thread (not splittable over rows: {why})"
    sums = sum(1 for lay in plan["results"] if lay == "sum")
    if sums and plan["rows"] // threads < opts.split_min_rows_with_sums:
        # Each chunk writes a full copy of every summed result (a weight
        # gradient) to be added up: worth it only for enough rows.
        return None, (f"1 thread ({plan['rows']} rows: too few to split a function "
                      f"whose results are summed over the chunks)")
    n = plan["rows"]
    threads = min(threads, n)
    bounds = [n * k // threads for k in range(threads + 1)]
    sizes = {hi - lo for lo, hi in zip(bounds[:-1], bounds[1:])}
    compiled = {}
    for rows in sizes:
        text = rowsplit.chunk_module(module_text, sig.func_name, ctx, rows, plan)
        t = time.perf_counter()
        _, ll = lower_to_llvm_ir(text, sig.func_name, ctx, vector_bytes=opts.vector_bytes,
                                 dialect_text=False, narrow_conversions=opts.narrow_conversions)
        lowering[0] += time.perf_counter() - t
        with ctx:
            chunk = function_signature(ir.Module.parse(text), sig.func_name)
        compiled[rows] = CpuFunction(ll, sig.func_name, chunk.inputs, chunk.outputs)
    note = (f"{threads} threads over row chunks of {sorted(sizes)} rows"
            + (f"; {sums} result(s) summed over the chunks" if sums else ""))
    chunks = [(lo, hi, compiled[hi - lo]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return RowSplitFunction(sig, chunks, plan), note

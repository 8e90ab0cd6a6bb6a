"""Compile a tensor-level MLIR function for the host CPU and call it.

Calling convention: after bufferization every tensor argument is a memref and
every result an out-parameter (``buffer-results-to-out-params``); without
``llvm.emit_c_interface`` a memref of rank r is passed as the flattened
descriptor ``(allocated, aligned, offset, sizes[r], strides[r])``. The caller
(numpy) allocates the outputs, so numpy owns all memory.
"""

import ctypes
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mlir import ir

from . import pipelines
from .llvm_codegen import host_vector_bytes, jit_llvm_ir
from .llvm_translate import translate_to_llvm_ir
from ..dialect.ir_utils import find_func, func_type
from ..passes import run_pipeline

# Bool tensors are stored as bytes (see passes/widen_bools.py): i1 at the
# tensor level and i8 after widening are both numpy bools to the caller.
_NP_OF = {"f32": np.float32, "f64": np.float64, "i1": np.bool_,
          "i8": np.bool_, "i32": np.int32, "i64": np.int64}


@dataclass(frozen=True)
class TensorSpec:
    """Shape and numpy dtype of one argument or result."""
    shape: Tuple[int, ...]
    dtype: np.dtype

    @staticmethod
    def of_type(t: ir.Type) -> "TensorSpec":
        if isinstance(t, ir.RankedTensorType):
            shape, elt = tuple(t.shape), str(t.element_type)
        else:
            shape, elt = (), str(t)
        if elt not in _NP_OF:
            raise TypeError(f"ferrule.runtime: unsupported element type {elt}")
        return TensorSpec(shape, np.dtype(_NP_OF[elt]))


def function_specs(module: ir.Module, func_name: str):
    """(input specs, output specs) of ``func_name`` in a tensor-level module."""
    ftype = func_type(find_func(module, func_name))
    return ([TensorSpec.of_type(t) for t in ftype.inputs],
            [TensorSpec.of_type(t) for t in ftype.results])


def mark_inputs_readonly(module: ir.Module, func_name: str) -> None:
    """Tell bufferization it may not write into the caller's input arrays."""
    fn = find_func(module, func_name)
    ftype = func_type(fn)
    ro = ir.DictAttr.get({"bufferization.writable": ir.BoolAttr.get(False)})
    fn.attributes["arg_attrs"] = ir.ArrayAttr.get([ro] * len(ftype.inputs))


def symbol_for(func_name: str) -> str:
    """The native symbol of a compiled function: prefixed, so that a user's
    function called ``exp`` or ``log1p`` cannot collide with the C library."""
    return "__ferrule_" + func_name


def lower_to_llvm_ir(module_text: str, func_name: str, ctx: ir.Context,
                     on_stage=None) -> Tuple[str, str]:
    """Lower a tensor-level module to (LLVM-dialect MLIR text, LLVM IR text).

    The function is exported as :func:`symbol_for` ``(func_name)``.
    """
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        mark_inputs_readonly(module, func_name)
        find_func(module, func_name).attributes["sym_name"] = ir.StringAttr.get(
            symbol_for(func_name))
        run_pipeline(module, pipelines.cpu_lowering(host_vector_bytes()), on_stage=on_stage)
        llvm_dialect = str(module)
        return llvm_dialect, translate_to_llvm_ir(module.operation)


def _cache_dir() -> Optional[Path]:
    d = os.environ.get("FERRULE_CACHE_DIR")
    if d == "":
        return None
    path = Path(d) if d else Path.home() / ".cache" / "ferrule"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


class _ObjectCache:
    """MCJIT object cache keyed by the hash of the LLVM IR and the host."""

    def __init__(self, key: str):
        d = _cache_dir()
        self.path = d / f"{key}.o" if d else None
        self.hit = bool(self.path and self.path.exists())

    def notify(self, _module, buffer: bytes) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(buffer)
            os.replace(tmp, self.path)

    def getbuffer(self, _module):
        if self.path is not None and self.path.exists():
            return self.path.read_bytes()
        return None


class CpuFunction:
    """A compiled function: call it with numpy arrays, get numpy arrays back.

    ``__call__(*arrays, out=None)``: inputs must match the specialised shapes
    and dtypes (checked); ``out`` may give preallocated output arrays
    (C-contiguous, right shape and dtype), which avoids page faults on fresh
    buffers for large outputs.
    """

    def __init__(self, llvm_ir: str, func_name: str,
                 inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]):
        import llvmlite.binding as llvm
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.func_name = func_name
        key = hashlib.sha256((llvm_ir + llvm.get_host_cpu_name()
                              + llvm.get_host_cpu_features().flatten()).encode()).hexdigest()
        cache = _ObjectCache(key)
        self.from_disk_cache = cache.hit
        self._engine, _ = jit_llvm_ir(llvm_ir, (cache.notify, cache.getbuffer))
        addr = self._engine.get_function_address(symbol_for(func_name))
        if not addr:
            raise RuntimeError(f"ferrule.runtime: symbol {func_name} not found after JIT")
        argtypes: List = []
        for spec in [*self.inputs, *self.outputs]:
            r = len(spec.shape)
            argtypes += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            argtypes += [ctypes.c_int64] * (2 * r)
        self._cfunc = ctypes.CFUNCTYPE(None, *argtypes)(addr)

    @staticmethod
    def _descriptor(a: np.ndarray) -> list:
        ptr = a.ctypes.data
        return [ptr, ptr, 0, *a.shape, *(s // a.itemsize for s in a.strides)]

    def __call__(self, *arrays, out=None):
        if len(arrays) != len(self.inputs):
            raise TypeError(f"{self.func_name}: expected {len(self.inputs)} "
                            f"arrays, got {len(arrays)}")
        args = []
        keep = []
        for k, (a, spec) in enumerate(zip(arrays, self.inputs)):
            a = np.asarray(a)
            if not a.flags.c_contiguous:  # (ascontiguousarray would make 0-d arrays 1-d)
                a = a.copy(order="C")
            if a.shape != spec.shape or a.dtype != spec.dtype:
                raise TypeError(
                    f"{self.func_name}: argument {k} must be {spec.dtype}"
                    f"{list(spec.shape)}, got {a.dtype}{list(a.shape)}")
            keep.append(a)
            args += self._descriptor(a)
        if out is None:
            outs = [np.empty(s.shape, s.dtype) for s in self.outputs]
        else:
            outs = list(out)
            if len(outs) != len(self.outputs):
                raise TypeError(f"{self.func_name}: out= needs {len(self.outputs)} arrays")
            for k, (o, s) in enumerate(zip(outs, self.outputs)):
                if (not isinstance(o, np.ndarray) or o.shape != s.shape
                        or o.dtype != s.dtype or not o.flags.c_contiguous
                        or not o.flags.writeable):
                    raise TypeError(
                        f"{self.func_name}: out[{k}] must be a writeable C-contiguous "
                        f"{s.dtype}{list(s.shape)} array")
        for o in outs:
            args += self._descriptor(o)
        self._cfunc(*args)
        return tuple(outs)


class RowSplitFunction:
    """A function run as chunks of its batch rows on a thread pool.

    ``chunks`` is a list of ``(start, stop, CpuFunction)`` covering the rows;
    each chunk function is the same program compiled for ``stop - start``
    rows. ``plan`` (from :func:`ferrule.runtime.rowsplit.chunk_module`) says
    which arguments are cut into rows (the others go whole to every chunk)
    and how each result is assembled: rows of dimension ``d`` written in
    place (``("split", d)``), partial sums added in chunk order (``"sum"``),
    or chunk 0's copy (``"whole"``). Same call interface as
    :class:`CpuFunction`.
    """

    _pools = {}

    def __init__(self, full: "CpuFunction", chunks, plan):
        self.inputs, self.outputs, self.func_name = full.inputs, full.outputs, full.func_name
        self.chunks = chunks
        self.threads = len(chunks)
        self.plan = plan

    def _pool(self):
        from concurrent.futures import ThreadPoolExecutor
        pool = RowSplitFunction._pools.get(self.threads)
        if pool is None:
            pool = RowSplitFunction._pools[self.threads] = ThreadPoolExecutor(
                self.threads, thread_name_prefix="ferrule")
        return pool

    def __call__(self, *arrays, out=None):
        arrays = [np.asarray(a) for a in arrays]
        for k, (a, spec) in enumerate(zip(arrays, self.inputs)):
            if a.shape != spec.shape or a.dtype != spec.dtype:
                raise TypeError(f"{self.func_name}: argument {k} must be {spec.dtype}"
                                f"{list(spec.shape)}, got {a.dtype}{list(a.shape)}")
        arrays = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]
        outs = list(out) if out is not None else [np.empty(s.shape, s.dtype) for s in self.outputs]
        for k, (o, s) in enumerate(zip(outs, self.outputs)):
            if (not isinstance(o, np.ndarray) or o.shape != s.shape or o.dtype != s.dtype
                    or not o.flags.c_contiguous or not o.flags.writeable):
                raise TypeError(f"{self.func_name}: out[{k}] must be a writeable C-contiguous "
                                f"{s.dtype}{list(s.shape)} array")
        split_args, layouts = self.plan["split_args"], self.plan["results"]
        jobs, later = [], []
        for c, (lo, hi, fn) in enumerate(self.chunks):
            ins = [a[lo:hi] if s else a for a, s in zip(arrays, split_args)]
            chunk_outs = []
            for j, (o, lay) in enumerate(zip(outs, layouts)):
                if lay == ("split", 0):
                    chunk_outs.append(o[lo:hi])
                elif lay in ("sum", "whole") and c == 0:
                    chunk_outs.append(o)
                else:
                    shape = list(fn.outputs[j].shape)
                    t = np.empty(shape, o.dtype)
                    chunk_outs.append(t)
                    later.append((j, lay, lo, hi, t))
            jobs.append(self._pool().submit(fn, *ins, out=tuple(chunk_outs)))
        for f in jobs:
            f.result()
        for j, lay, lo, hi, t in later:     # chunk order: deterministic sums
            if lay == "sum":
                outs[j] += t
            elif lay != "whole":
                d = lay[1]
                outs[j][(slice(None),) * d + (slice(lo, hi),)] = t
        return tuple(outs)

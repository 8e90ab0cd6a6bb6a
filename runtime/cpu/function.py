"""Compiled CPU functions, called with numpy arrays.

Calling convention (:mod:`ferrule.runtime.signature`): after bufferization
every tensor argument is a memref and every result an out-parameter
(``buffer-results-to-out-params``); without ``llvm.emit_c_interface`` a
memref of rank r is passed as the flattened descriptor ``(allocated,
aligned, offset, sizes[r], strides[r])``. The caller (numpy) allocates the
outputs, so numpy owns all memory.

:class:`CpuFunction` is one JIT-compiled function (its object code cached on
disk); :class:`RowSplitFunction` runs one compiled per row chunk on a
thread pool. Both have the same call interface.
"""

import ctypes
import hashlib
import os
import threading
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..signature import (Signature, TensorSpec, check_inputs, copy_back, prepare_outputs,
                         separate_outputs)
from . import call_path, callbacks, oom
from .codegen import externals_of, jit_llvm_ir, load_object, opt_level

def symbol_for(func_name: str) -> str:
    """The native symbol of a compiled function: prefixed, so that a user's
    function called ``exp`` or ``log1p`` cannot collide with the C library."""
    return "__ferrule_" + func_name


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


_MAGIC = b"ferrule-object-1\n"


class _ObjectCache:
    """MCJIT object cache keyed by the hash of the LLVM IR and the host.

    A file holds a header (magic, SHA-256 of the object) before the object
    code: a truncated or corrupt file is a miss, never code that is run."""

    def __init__(self, key: str):
        d = _cache_dir()
        self.path = d / f"{key}.o" if d else None
        self.hit = bool(self.path and self.path.exists())

    def notify(self, _module, buffer: bytes) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            try:
                tmp.write_bytes(_MAGIC + hashlib.sha256(buffer).digest() + buffer)
                os.replace(tmp, self.path)
            except OSError:
                pass

    def getbuffer(self, _module):
        if self.path is None:
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        head, digest = len(_MAGIC), data[len(_MAGIC):len(_MAGIC) + 32]
        obj = data[head + 32:]
        if data[:head] != _MAGIC or hashlib.sha256(obj).digest() != digest:
            return None
        return obj


def _c_strides(shape) -> list:
    """Strides in elements of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


class CpuFunction:
    """A compiled function: call it with numpy arrays, get numpy arrays back.

    ``__call__(*arrays, out=None)``: inputs must match the specialised shapes
    and dtypes (checked); ``out`` may give preallocated output arrays
    (C-contiguous, right shape and dtype), which avoids page faults on fresh
    buffers for large outputs.
    """

    def __init__(self, llvm_ir: Optional[str], func_name: str,
                 inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 object_key: Optional[str] = None, externals: Sequence[str] = ()):
        import llvmlite.binding as llvm
        oom.install()
        self.signature = Signature(func_name, tuple(inputs), tuple(outputs))
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.func_name = func_name
        symbol = symbol_for(func_name)
        if llvm_ir is not None:
            # The allocation guard (oom.py) is linked in at code generation;
            # its version is part of the key.
            object_key = hashlib.sha256((llvm_ir + f"O{opt_level(llvm_ir)}" + llvm.get_host_cpu_name()
                                         + llvm.get_host_cpu_features().flatten()
                                         + oom.GUARD_VERSION).encode()).hexdigest()
            externals = oom.externals(externals_of(llvm_ir))
        # object_key/externals: what the warm disk cache records to load this
        # function again without its LLVM IR (llvm_ir=None).
        self.object_key, self.externals = object_key, list(externals)
        # Host callbacks (callbacks.py): bound by symbol before the code is
        # linked (from LLVM IR or from the disk cache), and kept alive with it.
        self.callbacks = callbacks.install(sorted(
            int(n[len(callbacks.PREFIX):]) for n in self.externals
            if n.startswith(callbacks.PREFIX)))
        cache = _ObjectCache(object_key)
        obj = cache.getbuffer(None) if cache.hit else None
        self.from_disk_cache = obj is not None
        if obj is not None:     # compiled before: load it, no LLVM passes
            self._engine = load_object(obj, self.externals)
        elif llvm_ir is None:
            raise FileNotFoundError(f"object code {object_key} is not in the disk cache")
        else:
            self._engine, _ = jit_llvm_ir(llvm_ir, (cache.notify, cache.getbuffer),
                                          link=lambda mod, ctx: oom.link_guard(mod, symbol, ctx))
        addr = self._engine.get_function_address(oom.entry_symbol(symbol))
        if not addr:
            raise RuntimeError(f"ferrule.runtime: symbol {func_name} not found after JIT")
        # The entry takes this thread's jmp_buf slot and one array of 8-byte
        # parameters (oom.py): each array's memref descriptor (pointer,
        # pointer, offset 0, shape, strides in elements). All but the
        # pointers are fixed by the signature (C-contiguous arrays of the
        # specialised shapes), so the array is a template copied per call.
        template, self._pointer_slots = [], []
        for spec in [*self.inputs, *self.outputs]:
            self._pointer_slots.append(len(template))
            template += [0, 0, 0, *spec.shape, *_c_strides(spec.shape)]
        self._argv_type = ctypes.c_int64 * max(1, len(template))
        self._template = bytes(self._argv_type(*template))
        self._entry = addr
        self._cfunc = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)(addr)
        self._slots = (ctypes.c_int64 * max(1, len(self._pointer_slots)))(*self._pointer_slots)

    def _argv(self, arrays):
        """The entry's parameter array for ``arrays`` (inputs, then outputs),
        their data pointers read in Python."""
        argv = self._argv_type.from_buffer_copy(self._template)
        for k, a in zip(self._pointer_slots, arrays):
            argv[k] = argv[k + 1] = a.ctypes.data
        return argv

    def _call_native(self, arrays) -> int:
        """Run the compiled code on ``arrays`` (inputs, then outputs; the
        caller keeps them alive); its status (1: an allocation failed).

        Through :func:`call_path.trampoline`, which reads the data pointers
        natively from the arrays' addresses (~2 µs per array less than
        :meth:`_argv`); through :meth:`_argv` where it is unavailable."""
        fast = call_path.trampoline()
        if fast is None:
            return self._cfunc(oom.thread_slot(), ctypes.addressof(self._argv(arrays)))
        argv = self._argv_type.from_buffer_copy(self._template)
        for k, a in zip(self._pointer_slots, arrays):
            argv[k] = id(a)
        # A CFUNCTYPE call: the GIL is released meanwhile.
        return fast(self._entry, oom.thread_slot(), argv, self._slots, len(arrays))

    def __call__(self, *arrays, out=None):
        ins = check_inputs(self.signature, arrays)
        outs = prepare_outputs(self.signature, out)
        back = ()
        if out is not None:
            outs, back = separate_outputs(self.signature, outs, ins)
        if self.callbacks:
            callbacks.clear_pending()
        failed = self._call_native([*ins, *outs])
        if self.callbacks:
            callbacks.raise_pending()
        if failed:
            oom.raise_memory_error(self.func_name)
        if back:
            copy_back(outs, back)
        return tuple(outs)


class RowSplitFunction:
    """A function run as chunks of its batch rows on a thread pool.

    ``chunks`` is a list of ``(start, stop, CpuFunction)`` covering the rows;
    each chunk function is the same program compiled for ``stop - start``
    rows. ``plan`` (from :func:`ferrule.runtime.cpu.rowsplit.plan_split`) says
    which arguments are cut into rows (the others go whole to every chunk)
    and how each result is assembled: rows of dimension ``d`` written in
    place (``("split", d)``), partial sums added in chunk order (``"sum"``),
    or chunk 0's copy (``"whole"``). Same call interface as
    :class:`CpuFunction`.
    """

    _pools = {}

    def __init__(self, signature: Signature, chunks, plan):
        self.signature = signature
        self.inputs, self.outputs = list(signature.inputs), list(signature.outputs)
        self.func_name = signature.func_name
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
        arrays = check_inputs(self.signature, arrays)
        outs = prepare_outputs(self.signature, out)
        back = ()
        if out is not None:
            outs, back = separate_outputs(self.signature, outs, arrays)
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
            jobs.append((fn, ins, tuple(chunk_outs)))
        # The calling thread runs the first chunk itself, the pool the rest:
        # woken pool threads otherwise tended to share one core for a while
        # (the calling thread asleep in result()), which doubled a call's
        # time in about one run of three (LSTM cell 256x1024, 2 vCPUs: 2.4
        # ms instead of 1.3).
        futures = [self._pool().submit(fn, *ins, out=o) for fn, ins, o in jobs[1:]]
        try:
            fn, ins, o = jobs[0]
            fn(*ins, out=o)
        finally:
            for f in futures:
                f.result()
        for j, lay, lo, hi, t in later:     # chunk order: deterministic sums
            if lay == "sum":
                outs[j] += t
            elif lay != "whole":
                d = lay[1]
                outs[j][(slice(None),) * d + (slice(lo, hi),)] = t
        if back:
            copy_back(outs, back)
        return tuple(outs)

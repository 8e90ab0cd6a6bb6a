"""The per-call path into compiled code: arrays' data pointers read natively.

A compiled function's entry (:mod:`.oom`) takes ``argv``, one 8-byte slot
per parameter of its memref descriptors, two of them per array its data
pointer. Reading that pointer in Python (``a.ctypes.data`` builds a ctypes
helper object) cost ~2 µs per array on the development machines: 19 µs of
a GRU cell's 8-array call at 64x256 (issue 13), more than the rest of the
Python side together.

:func:`trampoline` is a native function, compiled once per process, that
takes the arrays' object addresses (``id(a)``, free in CPython) in the first
pointer slot of each array instead, reads each one's data pointer from the
``ndarray`` object — numpy's public ``PyArrayObject_fields`` layout: the
``data`` pointer right after the ``PyObject`` header — writes it into both
pointer slots, and calls the entry. The header's size is
``object.__basicsize__``; before using the offset, :func:`_data_offset`
checks it against ``a.ctypes.data`` on several arrays and views. Where the
check fails (an exotic CPython or numpy build), :func:`trampoline` returns
None and callers take the Python path, which is slower but the same.
The caller keeps the arrays alive for the call (they are its arguments).
"""

import ctypes
import threading
from typing import Optional

import numpy as np

_lock = threading.Lock()
_state = {"done": False, "fn": None, "engine": None}

# ferrule_call(entry, slot, argv, pointer_slots, n): for each of the n
# slots k, argv[k] holds an ndarray's address; replace it, and argv[k + 1],
# by the array's data pointer; then return entry(slot, argv).
_IR = """
define i32 @ferrule_call(ptr %entry, ptr %slot, ptr %argv, ptr %slots, i64 %n) {{
start:
  %empty = icmp eq i64 %n, 0
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [ 0, %start ], [ %next, %loop ]
  %ks = getelementptr i64, ptr %slots, i64 %i
  %k = load i64, ptr %ks
  %pk = getelementptr i64, ptr %argv, i64 %k
  %obj = load ptr, ptr %pk
  %field = getelementptr i8, ptr %obj, i64 {offset}
  %data = load ptr, ptr %field
  store ptr %data, ptr %pk
  %k1 = add i64 %k, 1
  %pk1 = getelementptr i64, ptr %argv, i64 %k1
  store ptr %data, ptr %pk1
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  %r = call i32 %entry(ptr %slot, ptr %argv)
  ret i32 %r
}}
"""

PROTOTYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_int64)


def _data_offset() -> Optional[int]:
    """Where an ndarray object keeps its data pointer, checked; or None."""
    offset = object.__basicsize__
    base = np.arange(64, dtype=np.float32)
    probes = [base, base[5:], base.reshape(8, 8)[2:], np.empty((3, 0)), np.zeros(1, np.int8),
              np.ones((2, 3), np.float64).T.copy()]
    for a in probes:
        if ctypes.c_void_p.from_address(id(a) + offset).value != (a.ctypes.data or None):
            return None
    return offset


def trampoline():
    """The native ``ferrule_call`` (see the module docstring) as a ctypes
    function, or None where the ndarray layout check fails."""
    if not _state["done"]:
        with _lock:
            if not _state["done"]:
                _state["fn"] = _build()
                _state["done"] = True
    return _state["fn"]


def _build():
    offset = _data_offset()
    if offset is None:
        return None
    import llvmlite.binding as llvm
    from .codegen import host_target_machine
    tm = host_target_machine()
    mod = llvm.parse_assembly(_IR.format(offset=offset))
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    _state["engine"] = engine      # keeps the code alive for the process
    return PROTOTYPE(engine.get_function_address("ferrule_call"))

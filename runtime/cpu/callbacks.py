"""Host callbacks: compiled CPU code calling back into Python.

``ferrule.pure_callback(fn, ...)`` registers ``fn`` here under a number
(:func:`register`) and traces an ``ad.pure_callback`` op that carries it;
the passes lower that op to a call of the external function
``@__ferrule_callback_<n>`` on buffers (``lower-callbacks``): per buffer, the
memref descriptor ``(allocated, aligned, offset, sizes..., strides...)``,
the inputs first, then the outputs, which the compiled code allocates and
the callback fills. :func:`install` binds that symbol for the JIT
(``llvmlite.binding.add_symbol``) to a ``ctypes.CFUNCTYPE`` trampoline
that wraps the buffers as numpy arrays, calls ``fn``, checks its results
and copies them into the output buffers.

The GIL: the compiled function is called through a ``ctypes.CFUNCTYPE``
prototype, which releases the GIL for the duration of the native call; a
``CFUNCTYPE`` callback takes it again when the native code calls back
(``PyGILState_Ensure``), and releases it on return.

Errors: an exception cannot unwind through native code, so the trampoline
catches it, records it for the calling thread and returns (the outputs it
did not fill hold whatever the buffers held); the compiled function runs to
its end, and :func:`raise_pending`, called by the runtime right after the
native call, raises :class:`CallbackError` from the original exception.

Lifetime: an entry, and its trampoline, live as long as the process. LLVM's
symbol table cannot forget a symbol, and compiled code — also object code
loaded from the disk cache — may call any registered number, so freeing
one could leave code calling freed memory. Equal registrations (the same
function object and the same argument and result specs) share a number.

The disk object cache stays correct across processes: the compiled code
names the callback only by its symbol, ``__ferrule_callback_<n>``, which the
JIT resolves when it loads the object — also an object read from the
cache — to this process's trampoline; no address is ever baked into the
code. The number itself is part of the code, and so of the cache key; it
means, in every process, the callback that process's trace registered
under it for that very IR.
"""

import ctypes
import itertools
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...dialect.builders import CALLBACK_PREFIX as PREFIX, callback_symbol
from ..signature import TensorSpec


class CallbackError(RuntimeError):
    """A callback raised, or returned results that do not match what its
    ``pure_callback`` call declared; chained from the original exception."""


@dataclass(eq=False)
class Callback:
    """A registered host function: its number, the function, its name, where
    it was traced, and the specs of its arguments and results."""
    number: int
    fn: Callable
    name: str
    where: str
    ins: Tuple[TensorSpec, ...]
    outs: Tuple[TensorSpec, ...]
    calls: int = 0
    trampoline: Optional[object] = field(default=None, repr=False)

    @property
    def symbol(self) -> str:
        return symbol(self.number)


_lock = threading.Lock()
_numbers = itertools.count()
_REGISTRY: Dict[int, Callback] = {}
_BY_KEY: Dict[tuple, int] = {}
_errors = threading.local()


def symbol(number: int) -> str:
    """The external symbol compiled code calls for callback ``number``."""
    return callback_symbol(number)


def register(fn: Callable, ins: Sequence[TensorSpec], outs: Sequence[TensorSpec],
             name: str, where: str, call: Optional[Callable] = None) -> int:
    """The number of ``fn`` with these argument and result specs (a new one
    unless the same function was registered with the same specs). ``call``,
    if given, is what runs (``fn`` with its results flattened, say); ``fn``
    is the identity of the registration."""
    ins, outs = tuple(ins), tuple(outs)
    try:
        key = (fn, ins, outs)
        hash(key)
    except TypeError:
        key = None
    with _lock:
        if key is not None and key in _BY_KEY:
            return _BY_KEY[key]
        n = next(_numbers)
        _REGISTRY[n] = Callback(n, call or fn, name, where, ins, outs)
        if key is not None:
            _BY_KEY[key] = n
        return n


def lookup(number: int) -> Callback:
    cb = _REGISTRY.get(number)
    if cb is None:
        raise KeyError(f"ferrule: no host callback number {number} in this process")
    return cb


def check_results(cb_name: str, results, outs: Sequence[TensorSpec], tree_hint: str = ""):
    """``results`` (what the function returned) as arrays of the declared
    ``outs`` (flat); a ``CallbackError`` naming the callback otherwise.
    A single declared result may be returned bare; values are converted to
    the declared dtype when numpy's ``same_kind`` casting allows."""
    if len(outs) == 1 and not isinstance(results, (tuple, list)):
        results = (results,)
    if not isinstance(results, (tuple, list)) or len(results) != len(outs):
        got = (f"{len(results)} results" if isinstance(results, (tuple, list))
               else type(results).__name__)
        raise CallbackError(f"pure_callback {cb_name!r} returned {got}; it was declared "
                            f"with {len(outs)} result(s){tree_hint}")
    arrays = []
    for k, (r, spec) in enumerate(zip(results, outs)):
        a = np.asarray(r)
        if a.shape != spec.shape:
            raise CallbackError(f"pure_callback {cb_name!r}: result {k + 1} has shape "
                                f"{a.shape}; it was declared {spec.shape}")
        if a.dtype != spec.dtype:
            if not np.can_cast(a.dtype, spec.dtype, casting="same_kind"):
                raise CallbackError(f"pure_callback {cb_name!r}: result {k + 1} has dtype "
                                    f"{a.dtype}; it was declared {spec.dtype}")
            a = a.astype(spec.dtype)
        arrays.append(a)
    return arrays


def _argtypes(specs: Sequence[TensorSpec]) -> List:
    """The flattened memref descriptors of ``specs``: (allocated, aligned,
    offset, sizes..., strides...) each."""
    types: List = []
    for s in specs:
        types += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        types += [ctypes.c_int64] * (2 * len(s.shape))
    return types


def _record(error: BaseException) -> None:
    if getattr(_errors, "pending", None) is None:
        _errors.pending = error


def _make_trampoline(cb: Callback):
    specs = list(cb.ins) + list(cb.outs)
    n_in = len(cb.ins)
    layout = []   # per buffer: (position of its aligned pointer, offset, nbytes, dtype, shape)
    pos = 0
    for s in specs:
        nbytes = int(np.prod(s.shape, dtype=np.int64)) * s.dtype.itemsize
        layout.append((pos + 1, pos + 2, nbytes, s.dtype, s.shape))
        pos += 3 + 2 * len(s.shape)

    def trampoline(*raw):
        try:
            arrays = []
            for k, (p, o, nbytes, dtype, shape) in enumerate(layout):
                addr = (raw[p] or 0) + raw[o] * dtype.itemsize
                buf = (ctypes.c_char * nbytes).from_address(addr) if nbytes else b""
                a = np.frombuffer(buf, dtype=dtype).reshape(shape)
                if k < n_in:
                    a.flags.writeable = False
                arrays.append(a)
            cb.calls += 1
            try:
                results = cb.fn(*arrays[:n_in])
            except Exception as e:   # noqa: BLE001 — reported after the native call
                raise CallbackError(f"pure_callback {cb.name!r} (traced at {cb.where}) "
                                    f"raised {type(e).__name__}: {e}") from e
            for out, r in zip(arrays[n_in:], check_results(cb.name, results, cb.outs)):
                out[...] = r
        except BaseException as e:  # noqa: BLE001 — never unwind into native code
            _record(e)
    return ctypes.CFUNCTYPE(None, *_argtypes(specs))(trampoline)


def install(numbers: Sequence[int]) -> List[Callback]:
    """Bind ``@__ferrule_callback_<n>`` for the JIT for each of ``numbers``
    (once per process); returns the entries, which the caller keeps."""
    import llvmlite.binding as llvm
    out = []
    with _lock:
        for n in numbers:
            cb = lookup(n)
            if cb.trampoline is None:
                cb.trampoline = _make_trampoline(cb)
                llvm.add_symbol(cb.symbol, ctypes.cast(cb.trampoline, ctypes.c_void_p).value)
            out.append(cb)
    return out


def numbers_in(llvm_ir: str) -> List[int]:
    """The callback numbers that LLVM IR declares (``declare void
    @__ferrule_callback_<n>(...)``)."""
    import re
    return sorted({int(m) for m in re.findall(r"declare void @" + PREFIX + r"(\d+)\(", llvm_ir)})


def raise_pending() -> None:
    """Raise what a callback raised during the last native call on this
    thread (and forget it)."""
    e = getattr(_errors, "pending", None)
    if e is not None:
        _errors.pending = None
        raise e


def clear_pending() -> None:
    _errors.pending = None


__all__ = ["Callback", "CallbackError", "register", "lookup", "install", "numbers_in",
           "raise_pending", "clear_pending", "check_results", "symbol", "PREFIX"]

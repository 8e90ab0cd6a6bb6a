"""``ferrule.jit``: trace, differentiate (passes), compile, call.

:class:`Jitted` keys each call by its arguments' shapes, dtypes and static
values and keeps one :class:`~ferrule.lowered.Lowered` specialisation per
key (its stages and compiled forms: frontend/lowered.py); ``compile``
builds one for an NVIDIA GPU.
"""

import functools
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mlir import ir

from . import numpy as _ops  # noqa: F401  (installs the Tracer's operators)
from .core import trace_into
from .dialect import VerificationError, make_context, verify_module
from .errors import DTypeError, TracingError
from .lowered import CudaCompiled, Lowered  # noqa: F401  (ferrule.api.CudaCompiled)
from .narrow import is_bfloat16, is_narrow
from .pytree import flatten, unflatten
from .runtime import cpu
from .runtime.cpu import diskcache
from .runtime.signature import TensorSpec
from .source_key import decode_struct, source_key
from .tracing import TypedArg, abi_element_type, current_trace, mlir_element_type, where_str

# Argument dtypes jit compiles for (besides Python floats, traced as weakly
# typed float64 0-d values).
_ARG_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.int32, np.int64,
                                          np.uint32, np.bool_))
_ARG_DTYPE_NAMES = "float32, float64, float16, bfloat16, int32, int64, uint32 and bool"
_WEAK = "weak"   # the dtype field of a Python float argument's spec


def _arg_dtype_ok(d) -> bool:
    """True for a dtype jit compiles for: float16 and bfloat16 included
    (stored narrow, computed in float32: ferrule.narrow)."""
    return d in _ARG_DTYPES or is_narrow(d)


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


# An f16 or bf16 element type in the IR: a narrow float stored narrow.


def _dtype_key(d: np.dtype):
    """A dtype in a cache key: its string (``'<f4'``), but bfloat16 itself,
    whose string (``'|V2'``) would lose what it is."""
    return d if is_bfloat16(d) else d.str


def _arg_spec(x):
    """A leaf's role: an array spec (shape, dtype) or a static Python value."""
    if isinstance(x, StaticArg):
        return ("static", type(x.value).__name__, x.value)
    if hasattr(x, "__cuda_array_interface__"):  # CuPy / PyTorch CUDA arrays
        cai = x.__cuda_array_interface__
        x = ShapeDtype(cai["shape"], np.dtype(cai["typestr"]))
    if isinstance(x, ShapeDtype):
        if not _arg_dtype_ok(x.dtype):
            raise DTypeError(f"ferrule: ShapeDtype of dtype {x.dtype} is not supported; "
                             f"use {_ARG_DTYPE_NAMES}")
        return ("array", x.shape, _dtype_key(x.dtype))
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if not _arg_dtype_ok(a.dtype):
            raise DTypeError(
                f"argument of dtype {a.dtype} is not supported; ferrule compiles "
                f"{_ARG_DTYPE_NAMES} arrays (use x.astype(np.float32))")
        return ("array", a.shape, _dtype_key(a.dtype))
    if isinstance(x, float):
        # Traced, not static: a new value (a learning rate) does not recompile.
        return ("array", (), _WEAK)
    if isinstance(x, (bool, int, str, type(None))):
        return ("static", type(x).__name__, x)  # 1 and True differ
    if hasattr(x, "__array__"):
        return _arg_spec(np.asarray(x))
    raise TypeError(f"ferrule.jit: cannot pass {type(x).__name__} to a jitted function; "
                    f"use numpy arrays, Python scalars, or tuples/lists of them")


class Jitted:
    """A function compiled per signature (shapes, dtypes, static values)."""

    def __init__(self, fun, static_argnums: Sequence[int] = (), target: str = "cpu",
                 pullback: str = "auto"):
        functools.update_wrapper(self, fun)
        self.fun = fun
        if pullback not in ("auto", "recompute", "store", "keep"):
            raise ValueError(f"pullback must be 'auto', 'recompute', 'store' or 'keep'; "
                             f"got {pullback!r}")
        self.pullback = pullback
        self.static_argnums = ((static_argnums,) if isinstance(static_argnums, int)
                               else tuple(static_argnums))
        self.target = _check_target(target)
        # Specialisations, least recently used first; at most cache_size()
        # are kept (an evicted one is traced again, or loaded from disk).
        self._cache: "OrderedDict[Any, Lowered]" = OrderedDict()
        self._lock = threading.Lock()     # tracing: one thread per Jitted
        self.trace_count = 0    # how many signatures were traced (tests, the example)
        self.load_count = 0     # how many were loaded from the disk cache untraced
        self._gpu: Dict[Any, Any] = {}
        # The call fast path: ((shape, dtype) per argument) -> (CPU options,
        # compiled function, results' structure), for calls whose arguments
        # are all plain numpy arrays (no statics, no pytrees, no uint32):
        # no flattening, no key building beyond shapes and dtypes. Cleared
        # whenever a specialisation is evicted (it must not keep one alive).
        self._fast: Dict[Any, Any] = {}

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
        """Trace a new specialisation (once, whatever the threads asking)."""
        with self._lock:
            low = self._cache.get(key)
            if low is None:
                low = self._load_warm(key, leaves, struct) or self._trace(key, leaves, struct)
                self._cache[key] = low
                while len(self._cache) > cache_size():
                    self._cache.popitem(last=False)
                    self._fast = {}
            return low

    def _load_warm(self, key, leaves, struct) -> Optional[Lowered]:
        """The specialisation from the disk cache by its source key
        (frontend/source_key.py), compiled for the default CPU options,
        without tracing; None on a miss (the caller traces). A trace made
        here is given its source key, so that compiling it records it."""
        if self.target != "cpu" or not diskcache.enabled():
            return None
        t = time.perf_counter()
        options = cpu.defaults()
        skey = source_key(self.fun, key, self.pullback, self.static_argnums, options.resolved())
        if skey is None:
            return None
        t_key = time.perf_counter() - t
        hit = diskcache.load_source(skey)
        # Only what tracing reads of the leaves (static values), not arrays.
        statics = [None if spec[0] == "array" else l for l, spec in zip(leaves, key[0])]
        if hit is None:
            low = self._trace(key, statics, struct)
            low._source = (options.resolved(), skey)
            low.timings["source_key"] = t_key
            return low
        fn, meta = hit
        out_struct = decode_struct(meta["struct"])
        low = Lowered(meta["name"], None, None, out_struct, {}, self.pullback,
                      retrace=lambda: self._trace(key, statics, struct)._stages["traced"])
        low.out_shapes = unflatten(out_struct, [ShapeDtype(s, d) for s, d in meta["outs"]])
        low.uint32_outs = list(meta["uint32_outs"])
        low._compiled[options] = fn
        low.timings = {"source_key": t_key, "disk_cache_load": time.perf_counter() - t - t_key}
        fn.timings = dict(low.timings)
        self.load_count += 1
        return low

    def _trace(self, key, leaves, struct) -> Lowered:
        t0 = time.perf_counter()
        self.trace_count += 1
        ctx = make_context()
        with ctx, ir.Location.unknown():
            module = ir.Module.create()
            arg_leaves = []
            for l, spec in zip(leaves, key[0]):
                if spec[0] == "array" and spec[2] == _WEAK:
                    arg_leaves.append(TypedArg(ir.RankedTensorType.get(
                        [], mlir_element_type(np.float64)), np.float64, weak=True))
                elif spec[0] == "array":
                    dt = np.dtype(spec[2])
                    # narrow floats are stored narrow at the boundary
                    t = ir.RankedTensorType.get(list(spec[1]), abi_element_type(dt))
                    arg_leaves.append(TypedArg(t, dt) if dt == np.uint32 or is_narrow(dt)
                                      else t)
                else:
                    arg_leaves.append(l.value if isinstance(l, StaticArg) else l)
            tree = unflatten(struct, arg_leaves)
            res = trace_into(module, self.fun, tuple(tree), getattr(self.fun, "__name__", "fn"),
                             narrow_abi=True)
            name, out_struct, out_types = res
            # the frontend's dtypes: uint32 results are i32 in the IR
            out_shapes = [ShapeDtype(s.shape, d)
                          for s, d in zip(map(TensorSpec.of_type, out_types), res.out_dtypes)]
            try:
                verify_module(module)
            except (VerificationError, ir.MLIRError) as e:
                raise TracingError(f"internal: traced IR of {name} does not verify: {e}") from None
            traced = str(module.operation.get_asm(enable_debug_info=True))
        low = Lowered(name, ctx, traced, out_struct, {"trace": time.perf_counter() - t0},
                      self.pullback)
        low.out_shapes = unflatten(out_struct, out_shapes)
        # uint32 is i32 in the IR: the caller's arrays are viewed across.
        low.uint32_outs = [k for k, d in enumerate(res.out_dtypes) if d == np.uint32]
        return low

    def __call__(self, *args, out=None):
        if current_trace() is not None:  # nested in another trace: inline
            return self.fun(*args)
        # out= arrays are checked by the compiled function itself (shapes,
        # dtypes, overlap with the inputs), so they take the fast path too.
        fast_key = _fast_key(args)
        hit = self._fast.get(fast_key) if fast_key is not None else None
        if hit is not None and hit[0] is cpu.defaults():
            if len(self._cache) > 1:
                try:
                    self._cache.move_to_end(hit[3])     # LRU order
                except KeyError:                        # evicted by another thread
                    pass
            outs = hit[1](*args, out=out)
            return outs[0] if hit[2] is None else unflatten(hit[2], outs)
        key, leaves, struct = self._key(args)
        low = self._cache.get(key)
        if low is None:
            low = self._lower(key, leaves, struct)
        elif len(self._cache) > 1:
            try:
                self._cache.move_to_end(key)        # LRU order
            except KeyError:                        # evicted by another thread
                pass
        arrays = [_arg_array(l, spec) for l, spec in zip(leaves, key[0]) if spec[0] == "array"]
        if self.target != "cpu":
            if key not in self._gpu:
                self._gpu[key] = low.compile_cuda(self.target).load()
            return unflatten(low.out_struct, list(self._gpu[key](*arrays, out=out)))
        u32 = low.uint32_outs
        if out is not None and u32:
            out = [o.view(np.int32) if k in u32 and isinstance(o, np.ndarray)
                   and o.dtype == np.uint32 else o for k, o in enumerate(out)]
        options = cpu.defaults()
        fn = low.compile(options)
        outs = list(fn(*arrays, out=out))
        for k in u32:
            outs[k] = outs[k].view(np.uint32)
        if fast_key is not None and not self.static_argnums and not u32 and key in self._cache:
            self._fast[fast_key] = (options, fn, low.out_struct, key)
        return unflatten(low.out_struct, outs)


_U32 = np.dtype(np.uint32)


def _fast_key(args):
    """The fast path's key for a call whose arguments are all numpy arrays
    (not uint32, which the compiled code sees as int32); None otherwise."""
    key = []
    for a in args:
        if type(a) is not np.ndarray or a.dtype is _U32:
            return None
        key.append((a.shape, a.dtype))
    return tuple(key)


def _arg_array(leaf, spec):
    """The array the compiled function takes for an argument leaf: a Python
    float as a float64 0-d array, a uint32 array viewed as int32."""
    if spec[2] == _WEAK:
        return np.asarray(leaf, np.float64)
    if spec[2] == np.dtype(np.uint32).str:
        return np.asarray(leaf).view(np.int32)
    return leaf


_CACHE_SIZE = None


def cache_size() -> int:
    """How many specialisations (signatures) each jitted function keeps in
    memory, least recently used evicted first: ``FERRULE_JIT_CACHE_SIZE``,
    default 64. An evicted signature called again is traced again and
    loaded from the disk cache (or compiled, without one)."""
    global _CACHE_SIZE
    if _CACHE_SIZE is None:
        import os
        env = os.environ.get("FERRULE_JIT_CACHE_SIZE", "")
        try:
            _CACHE_SIZE = max(1, int(env)) if env else 64
        except ValueError:
            raise ValueError(f"FERRULE_JIT_CACHE_SIZE must be an integer, got {env!r}") from None
    return _CACHE_SIZE


def set_cache_size(n: int) -> int:
    """Set :func:`cache_size` (for new and existing jitted functions, applied
    at their next new signature); returns the previous value."""
    global _CACHE_SIZE
    previous = cache_size()
    _CACHE_SIZE = max(1, int(n))
    return previous


def _check_target(target: str) -> str:
    if target == "cpu" or target == "cuda" or target.startswith("cuda:"):
        return target
    raise ValueError(f"unknown target {target!r}; use 'cpu', 'cuda' or 'cuda:sm_XX'")


def jit(fun=None, *, static_argnums: Sequence[int] = (), target: str = "cpu",
        pullback: str = "auto"):
    """Compile ``fun`` for the CPU, specialised on argument shapes and dtypes.

    ``jit(f)(*args)`` traces ``f`` once per signature (array shapes/dtypes and
    the values of Python ints, bools, strings and None, which are static;
    Python floats are traced as weakly typed scalars, so a new value does
    not recompile — ``static_argnums`` makes them static), runs the AD and lowering
    pipelines, and calls native code. ``jit(f).lower(*args).as_text(stage)``
    shows the IR. Calls may pass ``out=`` (a tuple of preallocated arrays,
    one per output) to reuse output buffers. ``pullback`` chooses how reverse
    mode differentiates pointwise regions: ``"auto"`` (a bytes-moved cost
    model; in a ``scan`` step it keeps the results of expensive ops such as
    ``tanh``), ``"recompute"`` (re-evaluate from the inputs), ``"store"``
    (keep the partials) or ``"keep"`` (keep the results of ``tanh``, ``exp``,
    ``log``, ... and recompute only the arithmetic); ``explain()`` reports
    each choice.

    Each jitted function keeps its last :func:`cache_size` specialisations
    (LRU, default 64); with a disk cache (``FERRULE_CACHE_DIR``, default
    ``~/.cache/ferrule``) a program compiled before in any process is
    loaded, not compiled (docs/performance.md).
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

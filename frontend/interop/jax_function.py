"""``ferrule.jax.function``: a ferrule function inside JAX programs.

``function(f)`` wraps a numpy-style function of positional arrays into a
JAX-traceable function usable inside ``jax.jit``, ``jax.grad``,
``jax.vjp`` and ``jax.value_and_grad``:

* it is a ``jax.custom_vjp`` whose primal is a ``jax.pure_callback`` to
  ferrule's compiled primal of ``f`` and whose backward is a
  ``pure_callback`` to ferrule's compiled pullback; the residuals are the
  inputs only (the pullback recomputes what it needs). The backward is itself
  a wrapped function, so ``jax.grad(jax.grad(...))`` works too.
* **vmap**: ``vmap_method`` is handed to ``pure_callback``. The default,
  ``"sequential"``, is right for every ``f``: one callback per batch element
  (a ``lax.map``). ``"expand_dims"``/``"broadcast_all"`` make one call on the
  whole batch (a new leading axis, of size 1 for unbatched arguments) — right
  only when ``f`` broadcasts over a leading axis (elementwise code; not code
  that indexes axes, such as ``split(G, 4, axis=1)``); ferrule then compiles
  ``f`` for the batched shapes.
* **forward mode** (``jax.jvp``, ``jax.jacfwd``) is not available: JAX does
  not differentiate a ``custom_vjp`` in forward mode.

Why ``pure_callback`` rather than XLA's FFI: ferrule's code is compiled in
this process by llvmlite, with memref-descriptor arguments; an FFI target
needs a C handler that decodes XLA's call frame (``XLA_FFI_CallFrame``, a
versioned ABI) before calling it. ``pure_callback`` needs nothing but
Python, works with every ``jax.jit``/``vmap``, and hands the callback the
input buffers as numpy arrays without a copy on the CPU; what it costs is a
Python round trip per call and one copy of each result into an XLA buffer.
An FFI handler would remove both (see docs/interop.md).
"""

import threading
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import jax
import jax.numpy as jnp

from ..errors import DTypeError
from .core import InteropError, Program, pullback_function, unflatten

_VMAP_METHODS = ("sequential", "sequential_unrolled", "expand_dims", "broadcast_all")


def function(f: Optional[Callable] = None, *, pullback: str = "auto",
             vmap_method: str = "sequential", name: Optional[str] = None):
    """Wrap numpy-style ``f`` (positional array arguments; an array or a
    tuple/list of arrays as result) for use in JAX programs. Usable as a
    decorator, with or without arguments. ``pullback`` as in
    :func:`ferrule.jit`; ``vmap_method`` as in ``jax.pure_callback``."""
    if f is None:
        return lambda g: Function(g, pullback=pullback, vmap_method=vmap_method, name=name)
    return Function(f, pullback=pullback, vmap_method=vmap_method, name=name)


def _spec(x, k: int, fname: str):
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None or dtype is None:
        raise InteropError(
            f"ferrule.jax.function {fname}: argument {k} is a {type(x).__name__}, not an "
            f"array; pass arrays only (bind other values with functools.partial or a "
            f"closure)")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"ferrule.jax.function {fname}: argument {k} has dtype {dt}; "
                         f"ferrule compiles float32 and float64 (float64 needs "
                         f"jax_enable_x64)")
    return (tuple(int(s) for s in shape), dt)


class Function:
    """A ferrule function for JAX programs (see :func:`function`)."""

    def __init__(self, f: Callable, pullback: str = "auto", vmap_method: str = "sequential",
                 name: Optional[str] = None):
        if vmap_method not in _VMAP_METHODS:
            raise ValueError(f"vmap_method must be one of {', '.join(_VMAP_METHODS)}; "
                             f"got {vmap_method!r}")
        self.f = f
        self.pullback = pullback
        self.vmap_method = vmap_method
        self.__name__ = name or getattr(f, "__name__", "fn")
        self.__doc__ = getattr(f, "__doc__", None)
        self.program = Program(f, pullback, self.__name__)
        self._pullbacks: Dict[Tuple[int, Tuple[int, ...]], "Function"] = {}
        self._lock = threading.Lock()

        @jax.custom_vjp
        def op(*xs):
            return self._call(xs)

        def fwd(*xs):
            # Residuals: the inputs only. The primal is ``op`` itself rather
            # than the bare callback, so that differentiating this rule (a
            # second derivative) meets a custom_vjp, not a pure_callback.
            return op(*xs), xs

        def bwd(xs, cts):
            pb = self.pullback_function(len(xs), tuple(range(len(xs))))
            return tuple(pb(*xs, *cts))
        op.defvjp(fwd, bwd)
        self._op = op

    def __repr__(self):
        return f"<ferrule.jax.function {self.__name__}>"

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise InteropError(f"ferrule.jax.function {self.__name__}: keyword arguments are "
                               f"not supported; pass arrays positionally")
        if not args:
            raise InteropError(f"ferrule.jax.function {self.__name__}: needs at least one "
                               f"array argument")
        specs = tuple(_spec(x, k, self.__name__) for k, x in enumerate(args))
        entry = self.program.entry(specs)
        outs = self._op(*[jnp.asarray(x) for x in args])
        return unflatten(entry.out_struct, list(outs))

    def lower(self, *args):
        """ferrule's :class:`~ferrule.api.Lowered` of the primal for these
        arguments' shapes and dtypes."""
        return self.program.entry(tuple(_spec(x, k, self.__name__)
                                        for k, x in enumerate(args))).lowered

    def pullback_function(self, n_inputs: int, needed: Sequence[int]) -> "Function":
        """The wrapped pullback: ``(*inputs, *output cotangents) ->`` the
        cotangents of the inputs in ``needed`` (a tuple)."""
        key = (n_inputs, tuple(needed))
        pb = self._pullbacks.get(key)
        if pb is None:
            with self._lock:
                pb = self._pullbacks.get(key)
                if pb is None:
                    pb = self._pullbacks[key] = Function(
                        pullback_function(self.f, n_inputs, key[1], self.__name__),
                        pullback=self.pullback, vmap_method=self.vmap_method)
        return pb

    def _call(self, xs) -> tuple:
        """``pure_callback`` to the compiled primal; a flat tuple of results."""
        specs = tuple(_spec(x, k, self.__name__) for k, x in enumerate(xs))
        entry = self.program.entry(specs)
        shapes = tuple(jax.ShapeDtypeStruct(s, d) for s, d in entry.out_specs)
        return tuple(jax.pure_callback(self._host, shapes, *xs, vmap_method=self.vmap_method))

    def _host(self, *arrays):
        """The callback: look up the signature of the arrays it is given (under
        ``vmap_method="expand_dims"`` they are batched) and run ferrule."""
        arrays = [np.asarray(a) for a in arrays]
        entry = self.program.entry(tuple((a.shape, a.dtype) for a in arrays))
        return tuple(entry.cpu()(*arrays))

"""Framework-neutral core of the interop wrappers (numpy + ferrule only).

A :class:`Program` holds a numpy-style function ``f`` of positional arrays
and compiles, per signature (shapes and dtypes of the arguments), its primal
with :func:`ferrule.jit`. Its pullback is another numpy-style function,
:func:`pullback_function`, which the wrappers turn into a wrapped function of
their own, so that the backward is differentiable too (double backward).

Framework tensors are handed to the compiled code as numpy views of their
memory (``out=`` for the results), so nothing is copied on the CPU.
"""

import threading
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..api import jit
from ..errors import DTypeError, FerruleError
from ..transforms import vjp

SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


class InteropError(FerruleError, TypeError):
    """A framework value ferrule cannot take: a dtype it does not compile,
    a tensor on a device it cannot run on, an argument that is not a tensor."""


def flatten(tree) -> Tuple[List[Any], Any]:
    """Nested tuples/lists -> (leaves, structure). The structure holds only
    strings, ints and tuples (a constant ``torch.compile`` can embed)."""
    if isinstance(tree, (tuple, list)):
        leaves, structs = [], []
        for t in tree:
            l, s = flatten(t)
            leaves += l
            structs.append((len(l), s))
        return leaves, ("list" if isinstance(tree, list) else "tuple", tuple(structs))
    return [tree], None


def unflatten(struct, leaves: Sequence[Any]):
    if struct is None:
        return leaves[0]
    kind, structs = struct
    out, k = [], 0
    for n, s in structs:
        out.append(unflatten(s, leaves[k:k + n]))
        k += n
    return list(out) if kind == "list" else tuple(out)


def check_dtype(dtype, what: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in SUPPORTED:
        raise DTypeError(f"{what} has dtype {dt}; ferrule compiles float32 and float64 "
                         f"(convert it, e.g. x.float() or x.double())")
    return dt


class Entry:
    """One signature: the compiled primal and the results' shapes."""

    __slots__ = ("lowered", "out_specs", "out_struct", "_cpu")

    def __init__(self, lowered):
        self.lowered = lowered
        leaves, self.out_struct = flatten(lowered.out_shapes)
        self.out_specs = [(tuple(s.shape), np.dtype(s.dtype)) for s in leaves]
        self._cpu = None

    def cpu(self):
        """The CPU function (compiled on first use): ``fn(*arrays, out=...)``."""
        if self._cpu is None:
            self._cpu = self.lowered.compile()
        return self._cpu


class Program:
    """``f`` compiled per signature; thread-safe cache."""

    def __init__(self, f: Callable, pullback: str = "auto", name: str = None):
        self.f = f
        self.name = name or getattr(f, "__name__", "fn")
        self.pullback = pullback
        self.jitted = jit(f, pullback=pullback)
        self._entries: Dict[Any, Entry] = {}
        self._lock = threading.Lock()

    def entry(self, specs: Tuple[Tuple[Tuple[int, ...], np.dtype], ...]) -> Entry:
        """The :class:`Entry` for argument specs ``((shape, dtype), ...)``."""
        e = self._entries.get(specs)
        if e is None:
            with self._lock:
                e = self._entries.get(specs)
                if e is None:
                    from ..api import ShapeDtype
                    low = self.jitted.lower(*[ShapeDtype(s, d) for s, d in specs])
                    for k, o in enumerate(flatten(low.out_shapes)[0]):
                        if np.dtype(o.dtype) not in SUPPORTED:
                            raise DTypeError(
                                f"{self.name}: result {k} has dtype {np.dtype(o.dtype)}; a "
                                f"wrapped function must return float32/float64 arrays")
                    e = self._entries[specs] = Entry(low)
        return e


def pullback_function(f: Callable, n_inputs: int, needed: Sequence[int], name: str) -> Callable:
    """The numpy-style pullback of ``f``: ``(*primals, *cotangents) ->``
    the cotangents of the primals listed in ``needed`` (a tuple).

    Compiled, it recomputes what it needs from the primals (with
    ``pullback="recompute"`` nothing but the inputs is read), so a wrapper
    saves only the inputs between forward and backward. Gradients not in
    ``needed`` are not computed at all (dead code).
    """
    needed = tuple(needed)

    def pullback(*args):
        primals, cts = args[:n_inputs], args[n_inputs:]
        _, pb = vjp(f, *primals)
        grads = pb(tuple(cts))
        return tuple(grads[k] for k in needed)
    pullback.__name__ = f"{name}_pullback"
    return pullback

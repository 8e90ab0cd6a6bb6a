"""The tape: :class:`Var`, the graph it records, and the backward sweep.

Each operation on Vars creates one :class:`Node` holding its parents (the
Vars it read), a closure ``backward(gs) -> one cotangent per parent`` and the
shapes and dtypes of its outputs. Nodes are numbered as they are created, so
creation order is a topological order: the backward sweep visits the
reachable nodes by decreasing number and needs no other bookkeeping. Nothing
is global: a graph lives as long as the Vars that reach it, and a pullback
may run many times.
"""

import functools
import inspect
import itertools
import os
import sys

import numpy as np

from ..narrow import is_float
from ..rules.tangents import AbstractZero
from .errors import EagerError, UnsupportedOpError
from .narrow import label, narrowed, widen
from .vjps import FUNCTION_VJPS, NONDIFF_FUNCTIONS, NONDIFF_UFUNCS, UFUNC_VJPS, unbroadcast

_ids = itertools.count()
_SKIP_DIRS = (os.path.dirname(np.__file__),
              os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def where() -> str:
    """``file:line`` of the user's code that applied the op (first frame
    outside numpy and ferrule)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_SKIP_DIRS):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "<unknown>"


class Node:
    """One recorded op: ``backward(gs)`` maps output cotangents (a list, one
    per output, zeros where none flowed) to one cotangent per parent Var."""

    __slots__ = ("id", "name", "parents", "backward", "avals")

    def __init__(self, name, parents, backward, avals):
        self.id = next(_ids)
        self.name, self.parents, self.backward, self.avals = name, parents, backward, avals


class Var:
    """An array on the tape: ``value`` (a plain numpy array or scalar) and the
    node that produced it (output number ``index``).

    numpy functions, ufuncs, operators, indexing and the usual methods record
    themselves; comparisons return plain bool arrays. Conversions that would
    drop the value from the tape (``np.asarray``, ``float``) raise.

    A float16 or bfloat16 value is held as float32 (exactly) with ``narrow``
    its dtype, which ``dtype`` reports (:mod:`ferrule.eager.narrow`): ops
    compute in float32, as under ``jit``. ``narrow`` labels a float32
    ``value`` as narrow without a conversion.
    """

    __slots__ = ("value", "node", "index", "narrow")
    __array_priority__ = 1000

    def __init__(self, value, node=None, index=0, narrow=None):
        value = value if isinstance(value, (np.ndarray, np.generic)) else np.asarray(value)
        value, own = widen(value)
        self.value, self.narrow = value, own or narrow
        self.node = node or Node("input", (), None, ((value.shape, value.dtype),))
        self.index = index

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype if self.narrow is None else self.narrow)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    T = property(lambda self: np.transpose(self))

    def __repr__(self):
        return f"Var({self.value!r}, op={self.node.name})"

    # -- numpy protocols ---------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return apply_function(func, args, kwargs)

    def __array__(self, *args, **kwargs):
        _dropped("conversion to a plain numpy array (np.asarray, np.array)")

    def __float__(self):
        _dropped("float()")

    def __int__(self):
        _dropped("int()")

    def __index__(self):
        _dropped("use as an index")

    def __bool__(self):  # control flow on values is fine in an eager AD
        return bool(self.value)

    def __len__(self):
        return len(self.value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, idx):
        return getitem(self, idx)

    def __setitem__(self, idx, v):
        raise EagerError(f"ferrule.eager: assigning into a Var (x[...] = v, at {where()}) "
                         f"is not differentiable; build the array with "
                         f"numpy.concatenate / numpy.where instead")

    # -- operators (numpy's ufuncs, so they record themselves) --------------
    def __add__(self, o): return np.add(self, o)
    def __radd__(self, o): return np.add(o, self)
    def __sub__(self, o): return np.subtract(self, o)
    def __rsub__(self, o): return np.subtract(o, self)
    def __mul__(self, o): return np.multiply(self, o)
    def __rmul__(self, o): return np.multiply(o, self)
    def __truediv__(self, o): return np.divide(self, o)
    def __rtruediv__(self, o): return np.divide(o, self)
    def __pow__(self, o): return np.power(self, o)
    def __rpow__(self, o): return np.power(o, self)
    def __matmul__(self, o): return np.matmul(self, o)
    def __rmatmul__(self, o): return np.matmul(o, self)
    def __neg__(self): return np.negative(self)
    def __pos__(self): return self
    def __abs__(self): return np.absolute(self)
    def __lt__(self, o): return np.less(self, o)
    def __le__(self, o): return np.less_equal(self, o)
    def __gt__(self, o): return np.greater(self, o)
    def __ge__(self, o): return np.greater_equal(self, o)
    def __eq__(self, o): return np.equal(self, o)
    def __ne__(self, o): return np.not_equal(self, o)
    __hash__ = object.__hash__

    # -- ndarray methods ------------------------------------------------------
    def reshape(self, *shape):
        return np.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return np.transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def sum(self, axis=None, keepdims=False): return np.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return np.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return np.max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return np.min(self, axis=axis, keepdims=keepdims)
    def var(self, axis=None, ddof=0, keepdims=False): return np.var(self, axis=axis, ddof=ddof, keepdims=keepdims)
    def std(self, axis=None, ddof=0, keepdims=False): return np.std(self, axis=axis, ddof=ddof, keepdims=keepdims)
    def cumsum(self, axis=None): return np.cumsum(self, axis=axis)
    def squeeze(self, axis=None): return np.squeeze(self, axis=axis)
    def ravel(self): return np.ravel(self)
    flatten = ravel  # a copy in numpy; Vars are immutable, so the same
    def clip(self, min=None, max=None): return np.clip(self, min, max)
    def dot(self, o): return np.dot(self, o)
    def copy(self): return np.copy(self)
    def astype(self, dtype): return np.astype(self, dtype)


def _dropped(what):
    raise EagerError(f"ferrule.eager: {what} of a Var at {where()} would drop it from the "
                     f"tape (its gradient would silently be zero); use numpy operations on "
                     f"the Var, or var.value for a constant copy")


def values(x):
    """``x`` with every Var replaced by its value (through lists and tuples)."""
    if isinstance(x, Var):
        return x.value
    if isinstance(x, (list, tuple)):
        return type(x)(values(v) for v in x)
    if isinstance(x, dict):
        return {k: values(v) for k, v in x.items()}
    return x


def record(name, ans, parents, backward, narrow=None):
    """Wrap ``ans`` (an array, or a list/tuple of arrays for several outputs)
    in Vars produced by one new node; plain ``ans`` when there are no parents.
    ``narrow``: the narrow dtype of the float32 outputs (see
    :func:`ferrule.eager.narrow.label`); narrow outputs are held as float32.
    The node's avals are the held (computation) shapes and dtypes."""
    if not parents:
        return ans
    multi = isinstance(ans, (list, tuple))
    outs, labels = [], []
    for o in (ans if multi else [ans]):
        o, own = widen(o if isinstance(o, (np.ndarray, np.generic)) else np.asarray(o))
        outs.append(o)
        labels.append(own or (narrow if o.dtype == np.float32 else None))
    node = Node(name, tuple(parents), backward, tuple((o.shape, o.dtype) for o in outs))
    vs = [Var(o, node, k, narrow=n) for k, (o, n) in enumerate(zip(outs, labels))]
    return vs if multi else vs[0]


def _differentiable(ans, name) -> bool:
    """True for float results; False for bool/int ones (no derivative)."""
    kinds = {"f" if is_float(np.result_type(o)) else np.result_type(o).kind
             for o in (ans if isinstance(ans, (list, tuple)) else [ans])}
    if kinds <= set("biu"):
        return False
    if kinds <= set("f"):
        return True
    raise UnsupportedOpError(f"ferrule.eager: {name} returned dtype kinds {sorted(kinds)} "
                             f"({where()}); only float arrays are differentiated")


def _check_kwargs(name, kwargs):
    for k in ("out", "where", "initial"):
        if kwargs.get(k) is not None:
            raise UnsupportedOpError(f"ferrule.eager: {name}(..., {k}=...) on a Var "
                                     f"({where()}) has no VJP; Vars are immutable and "
                                     f"masked or seeded reductions are not supported")


def _no_vjp(name):
    return UnsupportedOpError(
        f"ferrule.eager: no VJP for {name} (applied to a Var at {where()}). "
        f"Supported: ferrule.eager.supported_ops(); or wrap the computation in a "
        f"@rules.primitive with an rrule")


def apply_ufunc(ufunc, method, inputs, kwargs):
    """Record ``ufunc(*inputs)`` (``__array_ufunc__``)."""
    name = f"numpy.{ufunc.__name__}"
    if method != "__call__":
        raise _no_vjp(f"{name}.{method} (use the numpy function, e.g. numpy.sum)")
    _check_kwargs(name, kwargs)
    vals = [values(x) for x in inputs]
    dt = label(inputs, kwargs.get("dtype") is not None)
    if ufunc in NONDIFF_UFUNCS:
        return narrowed(ufunc(*vals, **kwargs), dt)
    vjps = UFUNC_VJPS.get(ufunc)
    if vjps is None:
        raise _no_vjp(name)
    ans = ufunc(*vals, **kwargs)
    if not _differentiable(ans, name):
        return ans
    argnums = [k for k, x in enumerate(inputs) if isinstance(x, Var)]
    return record(name, ans, [inputs[k] for k in argnums],
                  lambda gs: [vjps[k](gs[0], ans, *vals) for k in argnums], dt)


@functools.lru_cache(maxsize=None)
def _signature(func):
    return inspect.signature(func)


def apply_function(func, args, kwargs):
    """Record a numpy function call on Vars (``__array_function__``)."""
    name = f"numpy.{func.__name__}"
    dt = label(list(args) + list(kwargs.values()), kwargs.get("dtype") is not None
               or func is np.astype)
    if func is np.result_type:        # of the dtypes Vars say (a narrow one holds float32)
        return func(*[a.dtype if isinstance(a, Var) else a for a in args])
    if func in NONDIFF_FUNCTIONS:
        return narrowed(func(*values(args), **values(kwargs)), dt)
    table = FUNCTION_VJPS.get(func)
    if table is None:
        raise _no_vjp(name)
    _check_kwargs(name, kwargs)
    bound = _signature(func).bind(*args, **kwargs).arguments
    parents, slots = [], []  # slots: (parameter, position in a sequence parameter or None)
    for pname, v in bound.items():
        for i, x in (enumerate(v) if isinstance(v, (list, tuple)) else [(None, v)]):
            if not isinstance(x, Var):
                continue
            if pname not in table:
                raise _no_vjp(f"{name} with respect to its argument {pname!r}")
            if table[pname] is not None:
                parents.append(x)
                slots.append((pname, i))
    vals = {k: values(v) for k, v in bound.items()}
    ans = func(*values(args), **values(kwargs))
    if not parents or not _differentiable(ans, name):
        return ans

    def backward(gs):
        g = gs if isinstance(ans, (list, tuple)) else gs[0]
        done = {}
        out = []
        for pname, i in slots:
            if pname not in done:
                done[pname] = table[pname](g, ans, **vals)
            out.append(done[pname] if i is None else done[pname][i])
        return out
    return record(name, ans, parents, backward, dt)


def _basic_index(idx) -> bool:
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, slice)
               or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)))
               for p in parts)


def getitem(x: Var, idx):
    """Record ``x[idx]``: basic and advanced indexing (repeated indices add up)."""
    idx = values(idx)
    ans = x.value[idx]

    def backward(gs):
        out = np.zeros(x.shape, gs[0].dtype)
        if _basic_index(idx):
            out[idx] = gs[0]
        else:
            np.add.at(out, idx, gs[0])
        return [out]
    return record("getitem", ans, [x], backward, x.narrow)


def _accumulate(cts, v: Var, c):
    slot = cts.setdefault(v.node.id, [None] * len(v.node.avals))
    slot[v.index] = c if slot[v.index] is None else slot[v.index] + c


def backprop(seeds):
    """The backward sweep from ``seeds`` (pairs of a Var and its cotangent).

    Returns ``{node id: [cotangent per output]}`` for the nodes without parents
    (inputs) that a cotangent reached; the rest is freed as the sweep goes.
    """
    nodes, seen, stack = [], set(), [v.node for v, _ in seeds]
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen.add(n.id)
            nodes.append(n)
            stack.extend(p.node for p in n.parents)
    cts = {}
    for v, c in seeds:
        _accumulate(cts, v, c)
    for node in sorted(nodes, key=lambda n: n.id, reverse=True):
        gs = cts.pop(node.id, None) if node.parents else None
        if gs is None:
            continue
        gs = [np.zeros(s, d) if g is None else g for g, (s, d) in zip(gs, node.avals)]
        try:
            in_cts = node.backward(gs)
        except EagerError:
            raise
        except Exception as e:
            e.add_note(f"ferrule.eager: raised by the VJP of {node.name}")
            raise
        for p, c in zip(node.parents, in_cts):
            if c is None or isinstance(c, AbstractZero):
                continue
            c = unbroadcast(c, p.shape)
            held = p.value.dtype            # float32 for a narrow Var
            _accumulate(cts, p, c if c.dtype == held else c.astype(held))
    return cts

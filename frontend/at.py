"""``x.at[idx].add(v)`` / ``.set(v)`` / ``.get()``: functional updates (as JAX).

``x`` is not changed; the result is a new array. ``idx`` selects along the
first axis: an int, a slice, or an integer array (a Tracer, numpy array or
list; negative entries count from the end, traced ones are clamped as in
:mod:`ferrule.gather`). Several axes at once (a tuple index) are not
supported and say so.

``add`` is one ``ad.scatter_add`` of ``v`` into ``x`` (repeated indices
add up, as numpy's ``np.add.at``); its derivative rules are the op's
(linear in ``x`` and ``v``). ``set`` writes ``v`` where ``idx`` points and
keeps ``x`` elsewhere. With repeated indices JAX leaves the winner
unspecified; here an element set several times gets the **mean** of its
values, a deterministic choice that keeps ``set`` differentiable: it is
``where(count > 0, scatter_add(0, idx, v) / count, x)``.
"""

import numpy as _onp

from .core import asarray_traced, broadcast_to, check_trace, constant, wrap
from .dialect import builders
from .dtypes import I64
from .elementwise import divide, greater, where, zeros, ones
from .errors import DTypeError, UnsupportedOperationError
from .gather import _index_array, _static_normalised, take
from .layout import reshape
from .narrow import is_float
from .tracing import Tracer, user_location, where_str


def _scatter_add(dest: Tracer, idx, updates: Tracer) -> Tracer:
    """``ad.scatter_add`` of ``updates`` into ``dest`` at ``idx`` along axis 0."""
    if not isinstance(idx, Tracer):
        idx = constant(_static_normalised(idx, dest.shape[0], 0), idx.shape, I64)
    tr = check_trace(dest, idx, updates)
    dest, idx, updates = asarray_traced(dest), asarray_traced(idx), asarray_traced(updates)
    with user_location():
        op = builders.scatter_add(dest.value, idx.value, updates.value, 0)
    return wrap(op.result, tr, dest.dtype)


class _Ref:
    """``x.at[idx]``: what ``add``/``set``/``get`` update or read."""

    def __init__(self, x, idx):
        self.x = asarray_traced(x)
        if isinstance(idx, tuple):
            if len(idx) != 1:
                raise UnsupportedOperationError(
                    f"{where_str()}: x.at[...] with a tuple index is not supported by ferrule "
                    f"(one index along the first axis: an int, a slice or an integer array)")
            idx = idx[0]
        if self.x.ndim == 0:
            raise UnsupportedOperationError(f"{where_str()}: x.at[...] of a 0-d array")
        n = self.x.shape[0]
        self.scalar = isinstance(idx, (int, _onp.integer)) and not isinstance(idx, bool)
        if self.scalar:
            idx = _onp.array([int(idx)])
        elif isinstance(idx, slice):
            idx = _onp.arange(*idx.indices(n))
        elif idx is Ellipsis or idx is None:
            raise UnsupportedOperationError(f"{where_str()}: x.at[{idx!r}] is not supported")
        self.idx = _index_array(idx)
        if not is_float(self.x.dtype):
            raise DTypeError(f"{where_str()}: x.at[...] updates float arrays; got {self.x.dtype}")

    def _rows_shape(self):
        return tuple(self.idx.shape) + self.x.shape[1:]

    def _values(self, v) -> Tracer:
        v = asarray_traced(v)
        if v.dtype != self.x.dtype:
            from .core import astype
            v = astype(v, self.x.dtype)
        if self.scalar:
            v = broadcast_to(v, self.x.shape[1:])
        return broadcast_to(v, self._rows_shape())

    def get(self):
        """``x[idx]``."""
        r = take(self.x, self.idx, axis=0)
        return reshape(r, self.x.shape[1:]) if self.scalar else r

    def add(self, values):
        """``x`` with ``values`` added at ``idx`` (repeated indices add up)."""
        return _scatter_add(self.x, self.idx, self._values(values))

    def set(self, values):
        """``x`` with ``values`` written at ``idx`` (an element written several
        times gets the mean of its values; see the module docstring)."""
        v = self._values(values)
        zero = zeros(self.x.shape, self.x.dtype)
        total = _scatter_add(zero, self.idx, v)
        count = _scatter_add(zero, self.idx, ones(self._rows_shape(), self.x.dtype))
        hit = greater(count, 0)
        return where(hit, divide(total, where(hit, count, 1)), self.x)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedOperationError(
            f"{where_str()}: x.at[...].{name} is not supported by ferrule (get, add and set are)")


class _At:
    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return _Ref(self.x, idx)


def at(x) -> _At:
    """The ``.at`` property of traced arrays."""
    return _At(x)

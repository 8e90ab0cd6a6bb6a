"""``jacfwd``, ``jacrev``, ``hessian``: whole Jacobians from the AD passes.

A Jacobian is one derivative per basis vector. ferrule has no ``vmap``, so
each transform traces ONE ``ferrule.scan`` over the rows of an identity
matrix (built in the IR by ``iota``, so it holds no data): the step is a
``jvp`` (``jacfwd``: one input direction per step, one Jacobian column)
or a call of a ``vjp`` pullback (``jacrev``: one output cotangent per
step, one Jacobian row). The ``ad.jvp``/``ad.vjp`` inside the step are
lowered by the forward and reverse passes like any other; the scan keeps
the IR (and compile time) the same whatever the input or output size.

Shapes follow JAX: for an output leaf of shape ``O`` and an input leaf of
shape ``I`` the Jacobian block has shape ``O + I``; the result has the
output's structure with each leaf replaced by the structure of
``args[argnums]`` (a tuple of those for tuple ``argnums``).

Cost: the pass ``hoist-scan-invariants`` moves what a step computes from
the primals alone before the loop: ``jacrev``'s forward sweep runs once and
each of its ``m`` steps runs a backward sweep; ``jacfwd``'s primal matrix
products run once, while its pointwise primal code (fused with the tangent
code by forward mode) runs in each of its ``n`` steps. Nothing is stored
across steps but the Jacobian's rows or columns.
"""

import functools
from typing import Sequence, Union

import numpy as np

from .control import scan
from .core import asarray_traced, astype, reshape_to, strong
from .dtypes import I64
from .elementwise import equal, iota
from .layout import transpose
from .pytree import FLOAT0, flatten, is_float0, unflatten
from .tracing import current_trace
from .transforms import (_argnums_key, _is_float, _name, _split_aux, check_argnums,
                         compiled_once, jvp, vjp)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _offsets(sizes):
    return [int(o) for o in np.cumsum([0] + list(sizes))[:-1]]


def _identity(n: int, dtype):
    """The n×n identity in ``dtype``, computed in the IR (two iotas
    compared): no n² constant."""
    return astype(equal(iota((n, n), 0, I64), iota((n, n), 1, I64)), dtype)


def _piece(e, off: int, shape, dtype):
    """``e[off:off + size(shape)]`` reshaped to ``shape``, in ``dtype``."""
    return astype(reshape_to(e[off:off + _size(shape)], tuple(shape)), dtype)


class _Diff:
    """The differentiated arguments of one call: ``args[argnums]`` as float
    leaves, and ``value(*leaves)`` — ``f`` with them substituted (the other
    arguments closed over, so they are constants of the derivative)."""

    def __init__(self, f, args, argnums, has_aux: bool, what: str):
        self.multi = not isinstance(argnums, (int, np.integer))
        self.nums = tuple(argnums) if self.multi else (argnums,)
        check_argnums(f, args, self.nums, what)
        tree = tuple(args[k] for k in self.nums)
        leaves, self.struct = flatten(tree)
        self.leaves = [strong(asarray_traced(l)) for l in leaves]
        self.sizes = [_size(l.shape) for l in self.leaves]
        self.offsets = _offsets(self.sizes)

        def value(*diff_leaves):
            a = list(args)
            for k, v in zip(self.nums, unflatten(self.struct, list(diff_leaves))):
                a[k] = v
            out = f(*a)
            return _split_aux(out, what)[0] if has_aux else out
        value.__name__ = _name(f)
        self.value = value

    def in_tree(self, blocks):
        """``blocks`` (one per input leaf) in the structure of ``args[argnums]``."""
        tree = unflatten(self.struct, blocks)
        return tree if self.multi else tree[0]


def _float0_block(out_shape, in_shape):
    return np.zeros(tuple(out_shape) + tuple(in_shape), FLOAT0)


def _jacfwd_traced(f, args, argnums, has_aux):
    d = _Diff(f, args, argnums, has_aux, "jacfwd")
    n = sum(d.sizes)
    dtype = np.result_type(*[l.dtype for l in d.leaves])
    info = {}

    def column(carry, e):
        tangents = [_piece(e, o, l.shape, l.dtype)
                    for o, l in zip(d.offsets, d.leaves)]
        out, t_out = jvp(d.value, tuple(d.leaves), tuple(tangents))
        o_leaves, info["struct"] = flatten(out)
        info["outs"] = [(tuple(o.shape), o.dtype) for o in o_leaves]
        t_leaves = flatten(t_out, is_leaf=is_float0)[0]
        return carry, tuple(reshape_to(t, (_size(t.shape),))
                            for t, (_, dt) in zip(t_leaves, info["outs"]) if _is_float(dt))
    _, cols = scan(column, (), _identity(n, dtype))
    cols = iter(cols)
    jac = []
    for shape, dt in info["outs"]:
        if not _is_float(dt):   # integer outputs have float0 derivatives (as JAX)
            jac.append(d.in_tree([_float0_block(shape, l.shape) for l in d.leaves]))
            continue
        rows = transpose(next(cols))   # (out size, n): column j is direction j
        jac.append(d.in_tree([reshape_to(rows[:, o:o + s], shape + tuple(l.shape))
                              for o, s, l in zip(d.offsets, d.sizes, d.leaves)]))
    out = unflatten(info["struct"], jac)
    if has_aux:
        return out, _split_aux(f(*args), "jacfwd")[1]
    return out


def _jacrev_traced(f, args, argnums, has_aux):
    d = _Diff(f, args, argnums, has_aux, "jacrev")
    out, pullback = vjp(d.value, *d.leaves)
    o_leaves, o_struct = flatten(out)
    o_leaves = [asarray_traced(o) for o in o_leaves]
    floats = [o for o in o_leaves if _is_float(o.dtype)]
    m = sum(_size(o.shape) for o in floats)
    o_offsets = iter(_offsets([_size(o.shape) for o in floats]))
    offs = [next(o_offsets) if _is_float(o.dtype) else None for o in o_leaves]
    dtype = np.result_type(*[o.dtype for o in floats]) if floats else np.float32

    def row(carry, e):
        cts = [_piece(e, off, o.shape, o.dtype) if off is not None
               else np.zeros(o.shape, FLOAT0) for off, o in zip(offs, o_leaves)]
        in_cts = pullback(unflatten(o_struct, cts))
        return carry, tuple(reshape_to(c, (_size(c.shape),))
                            for c in flatten(in_cts)[0])
    rows = scan(row, (), _identity(m, dtype))[1] if m else ()
    jac = []
    for off, o in zip(offs, o_leaves):
        shape = tuple(o.shape)
        if off is None:
            jac.append(d.in_tree([_float0_block(shape, l.shape) for l in d.leaves]))
            continue
        n_o = _size(shape)
        jac.append(d.in_tree([reshape_to(r[off:off + n_o], shape + tuple(l.shape))
                              for r, l in zip(rows, d.leaves)]))
    res = unflatten(o_struct, jac)
    if has_aux:
        return res, _split_aux(f(*args), "jacrev")[1]
    return res


def _transform(kind: str, traced, f, argnums, has_aux):
    @functools.wraps(f)
    def jac(*args):
        if current_trace() is None:   # compiled once per signature, as grad
            return compiled_once(f, (kind, _argnums_key(argnums), has_aux),
                                 lambda p: _transform(kind, traced, p, argnums, has_aux)
                                 )(*args)
        return traced(f, args, argnums, has_aux)
    return jac


def jacfwd(f, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False):
    """The Jacobian of ``f`` with respect to ``args[argnums]`` by forward
    mode: one ``jvp`` per input element, as one scan over the input basis.

    For an output leaf of shape ``O`` and an input leaf of shape ``I``, the
    block has shape ``O + I`` (JAX's layout); tuple ``argnums`` give a tuple
    of blocks per output leaf. With ``has_aux``, ``f`` returns ``(out,
    aux)`` and the result is ``(jacobian, aux)``. Integer outputs get
    ``float0`` blocks; integer inputs in ``argnums`` are a ``DTypeError``.
    Best when inputs are fewer than outputs.
    """
    return _transform("jacfwd", _jacfwd_traced, f, argnums, has_aux)


def jacrev(f, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False):
    """The Jacobian of ``f`` with respect to ``args[argnums]`` by reverse
    mode: one pullback per output element, as one scan over the output
    basis. Same result layout and options as :func:`jacfwd`; best when
    outputs are fewer than inputs."""
    return _transform("jacrev", _jacrev_traced, f, argnums, has_aux)


def hessian(f, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False):
    """``jacfwd(jacrev(f, argnums), argnums)``: forward over reverse, as
    JAX. For scalar ``f`` and an input of shape ``I`` the result has shape
    ``I + I``."""
    def traced(g, args, nums, aux):
        if not aux:
            return _jacfwd_traced(jacrev(g, nums), args, nums, False)

        def gradient(*a):   # the aux is computed once, from g itself
            return jacrev(g, nums, True)(*a)[0]
        gradient.__name__ = _name(g)
        return (_jacfwd_traced(gradient, args, nums, False),
                _split_aux(g(*args), "hessian")[1])
    return _transform("hessian", traced, f, argnums, has_aux)


__all__ = ["jacfwd", "jacrev", "hessian"]

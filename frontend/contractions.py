"""Contractions built on ``matmul``: ``tensordot inner outer kron cross einsum``.

Part of ``ferrule.numpy`` (re-exported there). Each is a composition of ops
with derivative rules (transposes, reshapes, broadcasts, one 2-D or batched
``matmul`` where the contraction is one, sums), so the AD passes
differentiate them to any order; with concrete arguments each is numpy's.

``einsum`` takes numpy's subscripts with an explicit or implicit output,
repeated indices within one operand (a diagonal), and ``...``; each pair of
operands is contracted as one batched ``matmul`` (batch indices, free
indices of each side, summed indices), left to right.
"""

import builtins
import string

import numpy as _onp

from .core import asarray_traced, broadcast_to, stack, traced
from .elementwise import multiply, subtract
from .errors import ShapeError, UnsupportedOperationError
from .layout import matmul, reshape, sum as _sum, transpose
from .tracing import where_str



def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def tensordot(a, b, axes=2):
    """numpy ``tensordot``: the sum over ``axes`` of ``a`` and ``b`` (an int
    n: the last n of ``a`` with the first n of ``b``; or two sequences),
    computed as one 2-D ``matmul``.

    Derivative: linear in each operand (the matmul's rules)."""
    if not traced(a, b):
        return _onp.tensordot(a, b, axes)
    a, b = asarray_traced(a), asarray_traced(b)
    if isinstance(axes, int):
        if axes < 0 or axes > builtins.min(a.ndim, b.ndim):
            raise ShapeError(f"{where_str()}: tensordot: axes={axes} for arrays of "
                             f"{a.ndim} and {b.ndim} dimensions")
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
        if len(ax_a) != len(ax_b):
            raise ShapeError(f"{where_str()}: tensordot: {len(ax_a)} axes of a against "
                             f"{len(ax_b)} of b")
        ax_a = [x % a.ndim for x in ax_a]
        ax_b = [x % b.ndim for x in ax_b]
    for i, j in zip(ax_a, ax_b):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"{where_str()}: tensordot: shape mismatch for sum: axis {i} "
                             f"of a has {a.shape[i]}, axis {j} of b has {b.shape[j]}")
    free_a = [k for k in range(a.ndim) if k not in ax_a]
    free_b = [k for k in range(b.ndim) if k not in ax_b]
    k = _prod(a.shape[i] for i in ax_a)
    a2 = reshape(transpose(a, (*free_a, *ax_a)), (_prod(a.shape[i] for i in free_a), k))
    b2 = reshape(transpose(b, (*ax_b, *free_b)), (k, _prod(b.shape[i] for i in free_b)))
    return reshape(matmul(a2, b2), tuple(a.shape[i] for i in free_a)
                   + tuple(b.shape[i] for i in free_b))


def inner(a, b):
    """numpy ``inner``: the sum over the last axes of ``a`` and ``b``
    (``*`` if either is 0-d).

    Derivative: linear in each operand."""
    if not traced(a, b):
        return _onp.inner(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def outer(a, b):
    """numpy ``outer``: ``ravel(a)[:, None] * ravel(b)[None, :]``.

    Derivative: linear in each operand (a broadcast product)."""
    if not traced(a, b):
        return _onp.outer(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def kron(a, b):
    """numpy ``kron``: the Kronecker product (blocks ``a[i, j] * b``), one
    broadcast product and a reshape.

    Derivative: linear in each operand (a broadcast product)."""
    if not traced(a, b):
        return _onp.kron(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    prod = multiply(reshape(a, tuple(v for n in sa for v in (n, 1))),
                    reshape(b, tuple(v for n in sb for v in (1, n))))
    return reshape(prod, tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axis=-1):
    """numpy ``cross`` of 3-vectors along ``axis`` (both operands' vectors
    of length 3; 2-vectors are not supported), broadcasting the rest.

    Derivative: bilinear (products of components)."""
    if not traced(a, b):
        return _onp.cross(a, b, axis=axis)
    a, b = asarray_traced(a), asarray_traced(b)
    ax_a, ax_b = axis % a.ndim, axis % b.ndim
    if a.shape[ax_a] != 3 or b.shape[ax_b] != 3:
        raise UnsupportedOperationError(
            f"{where_str()}: cross of vectors of lengths {a.shape[ax_a]} and {b.shape[ax_b]}: "
            f"ferrule's cross takes 3-vectors only")

    def comp(x, ax, i):
        idx = [slice(None)] * x.ndim
        idx[ax] = i
        return x[tuple(idx)]
    a0, a1, a2 = (comp(a, ax_a, i) for i in range(3))
    b0, b1, b2 = (comp(b, ax_b, i) for i in range(3))
    c = [subtract(multiply(a1, b2), multiply(a2, b1)),
         subtract(multiply(a2, b0), multiply(a0, b2)),
         subtract(multiply(a0, b1), multiply(a1, b0))]
    out_ndim = c[0].ndim + 1
    return stack(c, axis=axis % out_ndim if axis >= 0 else out_ndim + axis)


# -- einsum ------------------------------------------------------------------------------

def _parse(subscripts: str, operands):
    """``(input index strings, output index string)``, ``...`` expanded to
    fresh capital letters (numpy's broadcasting dims)."""
    s = subscripts.replace(" ", "")
    if "->" in s:
        lhs, out = s.split("->")
        explicit = True
    else:
        lhs, out, explicit = s, None, False
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ShapeError(f"{where_str()}: einsum: {len(terms)} operand subscripts for "
                         f"{len(operands)} operands")
    letters = [c for c in string.ascii_uppercase]
    ell_nd = 0
    for t, x in zip(terms, operands):
        if "..." in t:
            ell_nd = builtins.max(ell_nd, x.ndim - (len(t) - 3))
    ell = "".join(letters[:ell_nd])
    if builtins.any(c.isupper() for c in s.replace("...", "")):
        raise UnsupportedOperationError(f"{where_str()}: einsum with capital-letter indices "
                                        f"is not supported by ferrule")
    ins = []
    for t, x in zip(terms, operands):
        if "..." in t:
            k = x.ndim - (len(t) - 3)
            t = t.replace("...", ell[ell_nd - k:] if k else "")
        if len(t) != x.ndim:
            raise ShapeError(f"{where_str()}: einsum: subscripts {t!r} for an operand of "
                             f"{x.ndim} dimensions")
        ins.append(t)
    if explicit:
        out = out.replace("...", ell)
    else:
        counts = {}
        for t in ins:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ins, out


def _diagonal_of(x, t: str):
    """``x`` with repeated indices of ``t`` reduced to their diagonal."""
    from .shapes import diagonal
    while True:
        dup = next((c for c in t if t.count(c) > 1), None)
        if dup is None:
            return x, t
        i = t.index(dup)
        j = t.index(dup, i + 1)
        x = diagonal(x, 0, i, j)                  # the diagonal becomes the last axis
        t = "".join(c for k, c in enumerate(t) if k not in (i, j)) + dup


def _sum_out(x, t: str, keep: str):
    """``x`` summed over its indices not in ``keep``."""
    drop = [k for k, c in enumerate(t) if c not in keep]
    if drop:
        x = _sum(x, axis=tuple(drop))
        t = "".join(c for c in t if c in keep)
    return x, t


def _pair(x, tx: str, y, ty: str, keep: str):
    """Contract ``x`` and ``y`` over the indices they share that ``keep``
    lacks, as one batched matmul: ``(batch, free_x, sum) @ (batch, sum, free_y)``."""
    shared = [c for c in tx if c in ty]
    batch = [c for c in shared if c in keep]
    summed = [c for c in shared if c not in keep]
    fx = [c for c in tx if c not in shared]
    fy = [c for c in ty if c not in shared]
    size = {c: n for c, n in zip(tx, x.shape)}
    for c, n in zip(ty, y.shape):
        if c in size and size[c] != n and 1 not in (n, size[c]):
            raise ShapeError(f"{where_str()}: einsum: index {c!r} has sizes {size[c]} and {n}")
        size[c] = builtins.max(size.get(c, n), n)

    def arrange(z, tz, order, shape):
        z = transpose(z, tuple(tz.index(c) for c in order))
        full = tuple(size[c] for c in order)
        if z.shape != full:
            z = broadcast_to(z, full)
        return reshape(z, shape)
    nb = tuple(size[c] for c in batch)
    X = arrange(x, tx, batch + fx + summed,
                nb + (_prod(size[c] for c in fx), _prod(size[c] for c in summed)))
    Y = arrange(y, ty, batch + summed + fy,
                nb + (_prod(size[c] for c in summed), _prod(size[c] for c in fy)))
    r = matmul(X, Y)
    return reshape(r, nb + tuple(size[c] for c in fx) + tuple(size[c] for c in fy)), \
        "".join(batch + fx + fy)


def einsum(subscripts, *operands):
    """numpy ``einsum`` for a subscripts string (explicit ``->`` or implicit
    output, repeated indices, ``...``); no ``out``/``optimize`` options.

    Derivative: multilinear (each pairwise step is a matmul)."""
    if not traced(*operands):
        return _onp.einsum(subscripts, *operands)
    if not isinstance(subscripts, str):
        raise UnsupportedOperationError(f"{where_str()}: einsum takes a subscripts string "
                                        f"(the interleaved form is not supported)")
    xs = [asarray_traced(x) for x in operands]
    ins, out = _parse(subscripts, xs)
    if len(set(out)) != len(out):
        raise ShapeError(f"{where_str()}: einsum: output subscript {out!r} repeats an index")
    terms = []
    for k, (x, t) in enumerate(zip(xs, ins)):
        x, t = _diagonal_of(x, t)
        others = "".join(u for j, u in enumerate(ins) if j != k)
        terms.append(_sum_out(x, t, out + others))     # an index nobody else has: summed now
    x, t = terms[0]
    for k, (y, ty) in enumerate(terms[1:], start=1):
        later = "".join(u for _, u in terms[k + 1:])
        x, t = _pair(x, t, y, ty, out + later)
    x, t = _sum_out(x, t, out)
    missing = [c for c in out if c not in t]
    if missing:
        raise ShapeError(f"{where_str()}: einsum: output index {missing[0]!r} appears in no "
                         f"operand")
    return transpose(x, tuple(t.index(c) for c in out)) if t != out else x

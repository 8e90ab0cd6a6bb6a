"""The traced half of ``ferrule.scan`` (:mod:`ferrule.control`): inside a
trace, ``scan`` emits one ``ad.scan`` op whose step ``f`` is traced once
into its own function; ``checkpoint=k`` nests scans over segments.

Kept apart from :mod:`ferrule.control`, which also compiles a scan called
outside a trace (through :mod:`ferrule.transforms` and ``jit``), so that the
op modules of ``ferrule.numpy`` (``prod``, ``cumsum``) can loop with
:func:`traced_scan` without an import circle.
"""

import numpy as np
from mlir import ir

from .core import asarray_traced, concatenate, strong, trace_into
from .dialect import builders
from .errors import ShapeError, TracingError
from .layout import reshape
from .pytree import flatten, unflatten
from .narrow import is_narrow
from .tracing import Tracer, TypedArg, current_trace, typed_arg, user_location, where_str


def _describe(t: Tracer) -> str:
    return f"{t.dtype}{list(t.shape)}"


def traced_scan(f, init, xs=None, length=None, reverse=False, checkpoint=None):
    """``scan`` inside a trace (its arguments and results are
    :func:`ferrule.scan`'s)."""
    if checkpoint is not None:
        return _checkpointed(f, init, xs, length, reverse, int(checkpoint))
    return _scan(f, init, xs, length, reverse, remat=False)


def _scan(f, init, xs, length, reverse, remat):
    init_leaves, init_struct = flatten(init)
    carry = [strong(asarray_traced(c)) for c in init_leaves]
    x_leaves, x_struct = flatten(xs) if xs is not None else ([], None)
    xs_t = [strong(asarray_traced(x)) for x in x_leaves]
    for x in xs_t:
        if x.ndim == 0:
            raise ShapeError(f"{where_str()}: scan: every xs must have a leading axis to "
                             f"scan over; got a 0-d array")
    lengths = {x.shape[0] for x in xs_t}
    if len(lengths) > 1:
        raise ShapeError(f"{where_str()}: scan: xs have different leading lengths "
                         f"{sorted(lengths)}; they are sliced together")
    if length is None:
        if not lengths:
            raise TracingError(f"{where_str()}: scan: with xs=None, give length=")
        length = lengths.pop()
    elif lengths and lengths != {int(length)}:
        raise ShapeError(f"{where_str()}: scan: length={length} but xs have leading "
                         f"length {lengths.pop()}")
    length = int(length)
    if length < 0:
        raise ShapeError(f"{where_str()}: scan: length must be >= 0, got {length}")
    name = getattr(f, "__name__", "step").replace("<", "").replace(">", "")
    n_c = len(carry)
    y_info = {}

    def step(*flat):
        c = unflatten(init_struct, list(flat[:n_c]))
        x = unflatten(x_struct, list(flat[n_c:])) if xs is not None else None
        out = f(c, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TracingError(f"{where_str()}: scan: the step function {name} must return "
                               f"(carry, y); got {type(out).__name__}")
        new_c, y = out
        c_leaves, c_struct = flatten(new_c)
        if repr(c_struct) != repr(init_struct) or len(c_leaves) != n_c:
            raise TracingError(f"{where_str()}: scan: {name} returned a carry whose structure "
                               f"differs from init's ({len(c_leaves)} arrays for {n_c})")
        c_leaves = [asarray_traced(v) for v in c_leaves]
        for k, (got, want) in enumerate(zip(c_leaves, flat[:n_c])):
            if got.shape != want.shape or got.dtype != want.dtype:
                raise TracingError(
                    f"{where_str()}: scan: {name} returned carry {k} as {_describe(got)}, but "
                    f"the carry is {_describe(want)} (from init): a carry keeps its shape "
                    f"and dtype from step to step (convert init or the new carry)")
        y_leaves, y_struct = flatten(y) if y is not None else ([], None)
        y_info["struct"] = y_struct
        y_info["none"] = y is None
        return (*c_leaves, *[asarray_traced(v) for v in y_leaves])

    tr = current_trace()

    def slice_arg(x):
        t = ir.RankedTensorType.get(list(x.shape[1:]),
                                    ir.RankedTensorType(x.value.type).element_type)
        # uint32 and the narrow floats say their dtype (the IR type does not)
        return TypedArg(t, x.dtype) if x.dtype == np.uint32 or is_narrow(x.dtype) else t
    arg_types = tuple([typed_arg(c) for c in carry] + [slice_arg(x) for x in xs_t])
    res = trace_into(tr.module, step, arg_types, name, private=True)
    callee, _, out_types = res
    consts = [c.value for c in res.captures]
    y_types = out_types[n_c:]
    stacked = [ir.RankedTensorType.get([length, *ir.RankedTensorType(t).shape],
                                       ir.RankedTensorType(t).element_type) for t in y_types]
    with ir.InsertionPoint(tr.block), user_location():
        op = builders.scan(callee, [c.value for c in carry], [x.value for x in xs_t], consts,
                           list(out_types[:n_c]) + stacked, length, reverse, remat)
    dtypes = [c.dtype for c in carry] + list(res.out_dtypes[n_c:])
    results = [Tracer(r, tr, d) for r, d in zip(op.results, dtypes)]
    final = unflatten(init_struct, results[:n_c])
    ys = None if y_info["none"] else unflatten(y_info["struct"], results[n_c:])
    return final, ys


def _checkpointed(f, init, xs, length, reverse, k):
    """``scan`` as segments of ``k`` steps: an outer scan (recomputed in the
    backward sweep) over inner scans, and a plain scan of the remaining
    ``length % k`` steps."""
    if k < 1:
        raise ShapeError(f"{where_str()}: scan: checkpoint must be a positive number of "
                         f"steps, got {k}")
    x_leaves, x_struct = flatten(xs) if xs is not None else ([], None)
    x_leaves = [asarray_traced(x) for x in x_leaves]
    if length is None:
        if not x_leaves:
            raise TracingError(f"{where_str()}: scan: with xs=None, give length=")
        length = x_leaves[0].shape[0]
    n, r = divmod(int(length), k)
    if n <= 1 and r == 0 or n == 0:
        return _scan(f, init, xs, length, reverse, remat=False)
    main = [reshape(x[:n * k], (n, k) + x.shape[1:]) for x in x_leaves]
    tail = [x[n * k:] for x in x_leaves]
    pack = (lambda ls: unflatten(x_struct, ls)) if xs is not None else (lambda ls: None)

    def segment(c, xseg):
        return _scan(f, c, xseg, k, reverse, remat=False)

    def run_main(c):
        return _scan(segment, c, pack(main), n, reverse, remat=True)

    def run_tail(c):
        return _scan(f, c, pack(tail), r, reverse, remat=False) if r else (c, None)
    if reverse:   # the last steps (the tail) run first
        c, ys_tail = run_tail(init)
        c, ys_main = run_main(c)
    else:
        c, ys_main = run_main(init)
        c, ys_tail = run_tail(c)
    if ys_main is None:
        return c, None
    m_leaves, y_struct = flatten(ys_main)
    m_leaves = [reshape(y, (n * k,) + y.shape[2:]) for y in m_leaves]
    if r:
        m_leaves = [concatenate([a, b], axis=0)
                    for a, b in zip(m_leaves, flatten(ys_tail)[0])]
    return c, unflatten(y_struct, m_leaves)

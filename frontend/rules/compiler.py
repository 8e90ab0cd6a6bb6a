"""How ferrule's compiler runs rules: tracing them into ``ad`` ops.

* A call of a :class:`~ferrule.rules.Primitive` with a registered rrule
  becomes ``ad.custom_rrule``: ``@f`` (the primal), ``@f_fwd`` (outputs, then
  the residuals — the arguments themselves: ferrule recomputes instead of
  storing) and ``@f_pullback`` (residuals, output cotangents -> argument
  cotangents), traced from the rule and its pullback closure. The reverse
  pass splices the pullback in; elsewhere the op is just a call of ``@f``.
* ``frule_via_ad`` under ferrule's config becomes ``ad.frule_via_ad``; the
  forward pass merges calls on the same callee and primals into one
  multi-direction region.
"""

import threading
from contextlib import contextmanager
from typing import List

from mlir import ir
from mlir.dialects import func as func_d

from .. import numpy as fnp
from ..core import asarray_traced, trace_into, zeros_value
from ..dialect import builders
from ..dialect.ir_utils import find_func
from ..errors import ShapeError, TracingError
from ..pytree import flatten, unflatten
from ..tracing import Tracer, current_trace, fresh_name, user_location, where_str
from ..transforms import vjp
from .config import HasForwardsMode, HasReverseMode, RuleConfig
from .registry import OptOut, Primitive, add_call_hook, find_frule, find_rrule
from .tangents import AbstractZero, NoTangent


class FerruleConfig(RuleConfig, HasReverseMode, HasForwardsMode):
    """ferrule's compiler: reverse mode and forward mode, both as passes."""

    def frule_via_ad(self, tangents, f, *args):
        return frule_via_ad_traced(tangents, f, args)

    def rrule_via_ad(self, f, *args):
        with _via_ad():
            y, pb = vjp(_plain(f), *args)

        def pullback(ybar):
            with _via_ad():     # vjp traces the function when the pullback runs
                cts = pb(ybar)
            return (NoTangent(), *cts)
        return y, pullback


CONFIG = FerruleConfig()


# -- a primitive called inside its own rule --------------------------------------------
#
# ChainRules' idiom ``y = f(x)`` as a rule's first line (and JAX's custom_jvp
# docs) calls the primitive inside its own rule. While a primitive's rules
# are traced, a frame for it is on this stack; a call of the primitive with
# the same argument types inside them is *the primitive itself*: a call of
# ``@<f>_self``, a function whose body is what the outer call site emits
# (the custom rule op), filled in once every rule is traced. So first-order
# code gets the primal, and a derivative of the rule's own code (second
# order) reaches the rules again instead of recursing at trace time.
# Inside ``frule_via_ad`` / ``rrule_via_ad`` callees (``_VIA_AD`` marks
# them), and for other argument types, the call is the primal's code
# traced inline: asking the AD for the derivative of a function that calls
# the primitive must not send the AD back into the rule being defined.

_stack = threading.local()
_VIA_AD = object()


class _Frame:
    """A primitive whose rules are being traced at one call site."""

    def __init__(self, prim, module, arg_types, out_struct, out_types):
        self.prim, self.module = prim, module
        self.arg_types, self.out_struct, self.out_types = arg_types, out_struct, out_types
        self.self_fn = None     # the @<f>_self declaration, made on the first self-call

    def self_call(self, xs):
        """Emit a call of ``@<f>_self`` on ``xs`` in the current trace."""
        if self.self_fn is None:
            name = fresh_name(self.module, _name(self.prim) + "_self")
            with ir.InsertionPoint(self.module.body), ir.Location.unknown():
                self.self_fn = func_d.FuncOp(
                    name, ir.FunctionType.get(list(self.arg_types), list(self.out_types)))
                self.self_fn.attributes["sym_visibility"] = ir.StringAttr.get("private")
        tr = current_trace()
        with ir.InsertionPoint(tr.block), user_location():
            op = builders.call_func(self.self_fn.name.value, [x.value for x in xs],
                                    self.out_types)
        return unflatten(self.out_struct, [Tracer(r, tr) for r in op.results])

    def finish(self, emit, loc: ir.Location) -> None:
        """Give ``@<f>_self`` its body: ``emit(arguments)`` (what the call
        site emits, at the call site's location) and a return."""
        if self.self_fn is None:
            return
        block = self.self_fn.add_entry_block()
        with ir.InsertionPoint(block), loc:
            func_d.ReturnOp(emit(list(block.arguments)))


@contextmanager
def _pushed(entry):
    stack = getattr(_stack, "entries", None)
    if stack is None:
        stack = _stack.entries = []
    stack.append(entry)
    try:
        yield entry
    finally:
        stack.pop()


def _via_ad():
    """Mark the callee of frule_via_ad / rrule_via_ad (see above)."""
    return _pushed(_VIA_AD)


def _frame_for(prim):
    """``(frame, inside a via_ad callee)`` for a primitive whose rules are
    being traced, or ``(None, False)``."""
    via = False
    for e in reversed(getattr(_stack, "entries", None) or []):
        if e is _VIA_AD:
            via = True
        elif e.prim is prim:
            return e, via
    return None, False


def _plain(f):
    return f.fn if isinstance(f, Primitive) else f


def _name(f) -> str:
    return getattr(_plain(f), "__name__", "fn").replace("<", "").replace(">", "")


def _as_tracers(args, what) -> List[Tracer]:
    out = []
    for a in args:
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            raise TracingError(f"{where_str()}: {what}: pass arrays, not Python scalars "
                               f"(wrap constants with ferrule.numpy.asarray)")
        out.append(asarray_traced(a))
    return out


def _zero_or(t, like: Tracer) -> Tracer:
    if t is None or isinstance(t, AbstractZero):
        return fnp.zeros(like.shape, like.dtype)
    t = asarray_traced(t)
    if t.shape != like.shape:
        raise ShapeError(f"{where_str()}: tangent of shape {t.shape} for an argument of "
                         f"shape {like.shape}")
    return fnp.astype(t, like.dtype)


def frule_via_ad_traced(tangents, f, args):
    """Emit ``ad.frule_via_ad``; see :func:`ferrule.rules.frule_via_ad`."""
    tr = current_trace()
    xs = _as_tracers(args, "frule_via_ad")
    chunked = isinstance(tangents, list)
    directions = tangents if chunked else [tangents]
    for d in directions:
        if not isinstance(d, tuple) or len(d) != len(xs) + 1:
            raise TracingError(
                f"{where_str()}: frule_via_ad tangents must be (ḟ, ẋ1, ..., ẋ{len(xs)}) "
                f"— {len(xs) + 1} entries — or a list of such tuples; got {d!r}")
    tvals = [_zero_or(t, x).value for d in directions for t, x in zip(d[1:], xs)]
    with _via_ad():
        res = trace_into(tr.module, _plain(f), tuple(x.value.type for x in xs),
                         _name(f), private=True)
    fname, out_struct, out_types = res
    captured = [c.value for c in res.captures]  # closed-over arrays: zero tangents
    K = len(directions)
    primals = [x.value for x in xs] + captured
    tvals = [t for d in range(K) for t in
             tvals[d * len(xs):(d + 1) * len(xs)]
             + [zeros_value(v.type) for v in captured]]
    with ir.InsertionPoint(tr.block), user_location():
        op = builders.frule_via_ad(fname, primals, tvals, out_types * (K + 1), num_directions=K)
    res = [Tracer(r, tr) for r in op.results]
    n = len(out_types)
    y = unflatten(out_struct, res[:n])
    ydots = [unflatten(out_struct, res[n * (k + 1):n * (k + 2)]) for k in range(K)]
    return y, (ydots if chunked else ydots[0])


def _no_captures(res, prim, what):
    if res.captures:
        raise TracingError(
            f"{where_str()}: the {what} of {prim.__name__} uses arrays of an enclosing "
            f"traced function through a closure; pass them to {prim.__name__} as arguments")
    return res


def call_primitive(prim: Primitive, args):
    """Trace a call of ``prim`` inside the current trace.

    With an frule, the call is an ``ad.custom_frule`` (forward mode uses the
    rule); with an rrule, an ``ad.custom_rrule`` (reverse mode uses it) whose
    primal is that custom_frule call when both exist. A rule that opts out,
    or no rule, leaves the primal to be traced inline. Inside one of its own
    rules, a call of ``prim`` is the primitive itself (see ``_Frame``).
    """
    rrule_fn, frule_fn = find_rrule(prim), find_frule(prim)
    if rrule_fn is None and frule_fn is None:
        return prim.fn(*args)
    tr = current_trace()
    xs = _as_tracers(args, prim.__name__)
    arg_types = tuple(x.value.type for x in xs)
    frame, via = _frame_for(prim)
    if frame is not None:
        if via or [str(t) for t in arg_types] != [str(t) for t in frame.arg_types]:
            return prim.fn(*args)
        return frame.self_call(xs)
    module = tr.module
    callee, out_struct, out_types = _no_captures(
        trace_into(module, prim.fn, arg_types, _name(prim), private=True), prim, "primal")
    frame = _Frame(prim, module, arg_types, out_struct, out_types)
    with _pushed(frame):
        frule_name = (_trace_frule(module, prim, frule_fn, arg_types, out_types)
                      if frule_fn is not None else None)
        pullback = (_trace_pullback(module, prim, rrule_fn, arg_types, out_struct, out_types)
                    if rrule_fn is not None else None)
    if frule_name is not None:
        rule_name = getattr(frule_fn, "__qualname__", "frule")

        def with_frule(*a):
            t = current_trace()
            with ir.InsertionPoint(t.block), user_location():
                op = builders.custom_frule(callee, frule_name, rule_name,
                                           [x.value for x in a], out_types)
            return tuple(Tracer(r, t) for r in op.results)
        callee, _, _ = trace_into(module, with_frule, arg_types, _name(prim) + "_with_frule",
                                  private=True)
    fwd = None
    if pullback is not None:
        fwd, _, _ = trace_into(module, lambda *a: (prim.fn(*a), a), arg_types,
                               _name(prim) + "_fwd", private=True)

    def emit(values):
        if pullback is None:    # the frule's wrapper, or the primal when all opted out
            op = builders.call_func(callee, values, out_types)
        else:
            op = builders.custom_rrule(callee, fwd, pullback,
                                       getattr(rrule_fn, "__qualname__", "rrule"),
                                       values, out_types, num_residuals=len(values))
        return list(op.results)
    frame.finish(emit, user_location())
    if pullback is None and frule_name is None:  # every rule opted out
        return prim.fn(*args)
    with ir.InsertionPoint(tr.block), user_location():
        results = emit([x.value for x in xs])
    return unflatten(out_struct, [Tracer(r, tr) for r in results])


def _trace_frule(module, prim, rule, arg_types, out_types):
    """Trace ``rule`` into ``@<f>_frule(x..., ẋ...) -> (y..., ẏ...)``; None on opt-out."""
    rule_name = getattr(rule, "__qualname__", "frule")
    n = len(arg_types)
    opted = []

    def body(*flat):
        xs, xdots = flat[:n], flat[n:]
        res = rule(CONFIG, (NoTangent(), *xdots), *xs)
        if isinstance(res, OptOut):
            opted.append(True)
            return (*xs, *xs)
        if not isinstance(res, tuple) or len(res) != 2:
            raise TracingError(f"frule {rule_name} for {prim.__name__} must return (y, ẏ)")
        y_leaves, _ = flatten(res[0])
        yd_leaves, _ = flatten(res[1])
        if len(y_leaves) != len(out_types) or len(yd_leaves) != len(out_types):
            raise TracingError(
                f"frule {rule_name} for {prim.__name__} returned {len(y_leaves)} outputs and "
                f"{len(yd_leaves)} tangents; {prim.__name__} has {len(out_types)} outputs")
        out = [asarray_traced(v) for v in y_leaves]
        for k, (t, y) in enumerate(zip(yd_leaves, out)):
            t = _zero_or(t, y)
            out.append(t)
        return tuple(out)

    return _trace_rule(module, prim, body, (*arg_types, *arg_types), "_frule", "frule", opted)


def _trace_pullback(module, prim, rule, arg_types, out_struct, out_types):
    """Trace ``rule``'s pullback into ``@<f>_pullback(x..., ȳ...) -> x̄...``.

    Returns its name, or None when the rule opted out.
    """
    rule_name = getattr(rule, "__qualname__", "rrule")
    n = len(arg_types)
    opted = []

    def body(*flat):
        xs, ybars = flat[:n], flat[n:]
        res = rule(CONFIG, *xs)
        if isinstance(res, OptOut):
            opted.append(True)
            return tuple(fnp.zeros(x.shape, x.dtype) for x in xs)
        if not isinstance(res, tuple) or len(res) != 2 or not callable(res[1]):
            raise TracingError(f"rule {rule_name} for {prim.__name__} must return "
                               f"(y, pullback); got {type(res).__name__}")
        y, pb = res
        y_leaves, y_struct = flatten(y)
        if len(y_leaves) != len(out_types):
            raise TracingError(f"rule {rule_name} returned {len(y_leaves)} outputs; "
                               f"{prim.__name__} has {len(out_types)}")
        cts = pb(unflatten(out_struct, list(ybars)))
        if not isinstance(cts, tuple) or len(cts) != n + 1:
            got = len(cts) if isinstance(cts, tuple) else type(cts).__name__
            want = ", ".join(["∂f"] + [f"x̄{k + 1}" for k in range(n)]) if n <= 3 \
                else f"∂f, x̄1, ..., x̄{n}"
            raise TracingError(
                f"the pullback of rule {rule_name} for {prim.__name__} must return a tuple "
                f"({want}) of {n + 1} entries; got {got}")
        out = []
        for k, (c, x) in enumerate(zip(cts[1:], xs)):
            if c is None or isinstance(c, AbstractZero):
                out.append(fnp.zeros(x.shape, x.dtype))
                continue
            c = asarray_traced(c)
            if c.shape != x.shape:
                raise ShapeError(
                    f"the pullback of rule {rule_name} for {prim.__name__} returned a "
                    f"cotangent of shape {c.shape} for argument {k + 1}, which has shape "
                    f"{x.shape}")
            out.append(fnp.astype(c, x.dtype))
        return tuple(out)

    return _trace_rule(module, prim, body, (*arg_types, *out_types), "_pullback", "rrule", opted)


def _trace_rule(module, prim, body, arg_types, suffix: str, what: str, opted: list):
    """Trace ``body`` into ``@<prim><suffix>``; its name, or None (and no
    function left) when the rule opted out while being traced."""
    name, _, _ = _no_captures(trace_into(module, body, arg_types, _name(prim) + suffix,
                                         private=True), prim, what)
    if opted:
        find_func(module, name).erase()
        return None
    return name


def _traced_call(prim: Primitive, args):
    """The compiler's call hook: a primitive called inside a trace."""
    if current_trace() is None:
        return NotImplemented
    return call_primitive(prim, args)


add_call_hook(_traced_call)

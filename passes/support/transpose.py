"""Rules that transpose: an frule serving reverse mode, an rrule serving forward mode.

A traced frule ``@F(x..., ẋ...) -> (y..., ẏ...)`` is, in ``ẋ``, a linear map
``ẏ = J(x)·ẋ``; reverse mode needs ``x̄ = J(x)ᵀ·ȳ``, the transpose of that
map, and the transpose of a linear map is its VJP. So
:func:`frule_pullback` builds ``@F_tangents(x..., ẋ...) -> ẏ...``, checks that
it is linear in ``ẋ``, and has the reverse pass differentiate it with
respect to ``ẋ`` (at ``ẋ = 0``; the Jacobian of a linear map does not depend
on where it is taken). This is JAX's ``custom_jvp`` transposition, done by
the reverse pass that already exists.

Symmetrically a traced pullback ``@P(res..., ȳ...) -> x̄...`` is linear in
``ȳ`` (``x̄ = Jᵀ·ȳ``), and its VJP with respect to ``ȳ`` for the cotangent
``ẋ`` is ``(Jᵀ)ᵀ·ẋ = J·ẋ``: the pushforward forward mode needs
(:func:`pullback_pushforward`).

Both are checked first, statically, on the IR (:func:`linearity`): each
value is a symbolic ZERO, a CONSTANT (independent of the tangents), LINEAR
in them, or non-linear with the op and location that made it so — a
tangent times a tangent, a tangent divided into, a non-linear function
(``math.*``, max/min) of a tangent, a tangent in a comparison or a
condition, a tangent added to a value that does not depend on the
tangents (affine, not linear), a tangent passed to a callback (opaque).
A rule whose outputs are not all LINEAR or ZERO cannot be transposed, and
the error says why and where (:class:`NotTransposable`).

The reverse pass lends its ``vjp_function`` through
:func:`ad_common.builder`, so this module imports no pass.
"""

import re
from typing import Dict, List, Optional, Sequence

from mlir import ir

from ...dialect.ir_utils import (block_ops, body_block, find_func, func_body, func_name,
                                 func_type, generic_num_inputs, loc_where)
from . import ad_common as ad

ZERO, CONST, LINEAR = "zero", "const", "linear"


class Bad:
    """A value that is not linear in the tangents: the op that made it so."""

    __slots__ = ("reason", "location")

    def __init__(self, reason: str, location: ir.Location):
        self.reason, self.location = reason, location

    def __eq__(self, other):
        return isinstance(other, Bad) and other.reason == self.reason

    def __hash__(self):
        return hash(self.reason)

    def where(self) -> str:
        return loc_where(self.location)


class NotTransposable(Exception):
    """A rule's tangent map (or pullback) is not linear: ``bad`` says where."""

    def __init__(self, bad: Bad):
        self.bad = bad
        super().__init__(f"at {bad.where()} it {bad.reason}")


# -- the static linearity check -----------------------------------------------------

def _join(a, b, op):
    """Two values combined additively (a sum, a select's branches, a slice
    inserted into a tensor, a loop's carry)."""
    for s in (a, b):
        if isinstance(s, Bad):
            return s
    if a == ZERO:
        return b
    if b == ZERO or a == b:
        return a
    return Bad("adds a tangent to a value that does not depend on the tangents "
               "(the map is affine, not linear)", op.location)


def _mul(a, b, op, what="multiplies a tangent by a tangent"):
    for s in (a, b):
        if isinstance(s, Bad):
            return s
    if ZERO in (a, b):
        return ZERO
    if a == LINEAR and b == LINEAR:
        return Bad(what, op.location)
    return LINEAR if LINEAR in (a, b) else CONST


def _is_zero_constant(op) -> bool:
    if op.name != "arith.constant":
        return False
    attr = op.attributes["value"]
    if isinstance(attr, ir.DenseElementsAttr):
        if not attr.is_splat:
            return False
        attr = attr.get_splat_value()
    if isinstance(attr, ir.IntegerAttr):
        return ir.IntegerAttr(attr).value == 0
    return isinstance(attr, ir.FloatAttr) and ir.FloatAttr(attr).value == 0.0


_SAME = ("arith.negf", "arith.extf", "arith.truncf", "tensor.collapse_shape",
         "tensor.expand_shape", "tensor.extract_slice", "tensor.extract", "tensor.cast",
         "linalg.transpose", "linalg.broadcast", "linalg.fill")
_MATMULS = ("linalg.matmul", "linalg.batch_matmul")
_DIFF_OPS = ("ad.jvp", "ad.frule_via_ad", "ad.vjp")


def _describe(op) -> str:
    name = op.name
    if name in ("arith.cmpf", "arith.cmpi"):
        return f"compares a tangent ({name}): a tangent in a condition is not linear"
    if name in ("arith.maximumf", "arith.minimumf", "arith.maxnumf", "arith.minnumf"):
        return f"takes the {'maximum' if 'max' in name else 'minimum'} of a tangent ({name})"
    if name.startswith("math."):
        return f"applies {name} to a tangent, which is not linear"
    if name.startswith(("arith.fpto", "arith.bitcast")):
        return f"converts a tangent to integers ({name})"
    if name == "arith.remf":
        return "takes a remainder of a tangent (arith.remf)"
    return f"applies '{name}' to a tangent, which ferrule does not know to be linear"


class _Analysis:
    def __init__(self, module_op):
        self.module_op = module_op
        self.cache: Dict[tuple, list] = {}
        self.depth = 0

    def function(self, name: str, arg_states: Sequence, loc) -> list:
        """States of ``@name``'s results for these argument states."""
        key = (name, tuple(arg_states))
        if key in self.cache:
            return self.cache[key]
        fn = find_func(self.module_op, name)
        n_out = len(func_type(fn).results)
        if not len(fn.regions[0].blocks):
            if LINEAR in arg_states or any(isinstance(s, Bad) for s in arg_states):
                return [Bad(f"passes a tangent to the external function @{name}, which "
                            f"ferrule cannot see into", loc)] * n_out
            return [CONST] * n_out
        if self.depth > 64:
            return [Bad(f"calls @{name} recursively", loc)] * n_out
        self.depth += 1
        block = func_body(fn)
        st = dict(zip(block.arguments, arg_states))
        ops = block_ops(block)
        self.ops(ops[:-1], st)
        out = [self.get(st, v) for v in ops[-1].operands]
        self.depth -= 1
        self.cache[key] = out
        return out

    @staticmethod
    def get(st, v):
        return st.get(v, CONST)   # a value from outside: it does not depend on the tangents

    def ops(self, ops, st) -> None:
        for op in ops:
            ins = [self.get(st, v) for v in op.operands]
            outs = self.op(op, ins, st)
            for r, s in zip(op.results, outs):
                st[r] = s

    def op(self, op, ins, st) -> list:
        name, n = op.name, len(op.results)
        if name == "arith.constant":
            return [ZERO if _is_zero_constant(op) else CONST]
        if name in ("tensor.empty", "linalg.index"):
            return [ZERO if name == "tensor.empty" else CONST] * n
        if name == "linalg.generic":
            return self.generic(op, ins, st)
        if name == "func.call":
            return self.function(ir.FlatSymbolRefAttr(op.attributes["callee"]).value, ins,
                                 op.location)
        if name in ("ad.custom_rrule", "ad.custom_frule"):
            return self.function(ad.callee_of(op), ins, op.location)
        if name == "ad.scan":
            return self.scan(op, ins)
        if name in _DIFF_OPS:
            return self.derivative(op, ins)
        bad = next((s for s in ins if isinstance(s, Bad)), None)
        if bad is not None:
            return [bad] * n
        if name == "ad.pure_callback":
            if LINEAR in ins:
                cb = ir.StringAttr(op.attributes["name"]).value
                return [Bad(f"passes a tangent to the callback {cb!r}: a callback is opaque, "
                            f"so ferrule cannot transpose it", op.location)] * n
            return [CONST] * n
        if name in ("arith.addf", "arith.subf"):
            return [_join(ins[0], ins[1], op)]
        if name == "arith.mulf":
            return [_mul(ins[0], ins[1], op)]
        if name == "arith.divf":
            if ins[1] == LINEAR:
                return [Bad("divides by a tangent", op.location)]
            return [_mul(ins[0], ins[1], op)]
        if name == "arith.select":
            if ins[0] == LINEAR:
                return [Bad("chooses by a condition computed from a tangent (arith.select)",
                            op.location)]
            return [_join(ins[1], ins[2], op)]
        if name in ("tensor.insert_slice", "tensor.insert"):
            return [_join(ins[0], ins[1], op)]
        if name in _SAME:
            if LINEAR in ins[1:] and name != "linalg.fill":
                return [Bad(f"indexes with a tangent ({name})", op.location)] * n
            return [ins[0]] * n
        if name in _MATMULS:
            return [_join(_mul(ins[0], ins[1], op), ins[2], op)]
        if LINEAR in ins:
            return [Bad(_describe(op), op.location)] * n
        return [CONST] * n

    def generic(self, op, ins, st) -> list:
        """A region: its block arguments take the operands' states; an output
        argument (a reduction's accumulator) joins its start with what the
        body yields, until nothing changes."""
        n_in = generic_num_inputs(op)
        block = body_block(op)
        args = list(block.arguments)
        inits = ins[n_in:]
        out_arg = list(inits)
        body = block_ops(block)
        ys = []
        for _ in range(4):
            for a, s in zip(args, ins[:n_in] + out_arg):
                st[a] = s
            self.ops(body[:-1], st)
            ys = [self.get(st, v) for v in body[-1].operands]
            new = [_join(i, y, op) if self._reads(args[n_in + j]) else y
                   for j, (i, y) in enumerate(zip(inits, ys))]
            if new == out_arg:
                break
            out_arg = new
        return ys

    @staticmethod
    def _reads(arg) -> bool:
        return any(True for _ in arg.uses)

    def scan(self, op, ins) -> list:
        n_c, n_x, n_k = ad.segment_sizes(op)
        callee = ad.callee_of(op)
        carries = list(ins[:n_c])
        outs = []
        for _ in range(6):
            outs = self.function(callee, carries + ins[n_c:], op.location)
            new = [_join(c, o, op) for c, o in zip(ins[:n_c], outs[:n_c])]
            if new == carries:
                break
            carries = new
        return carries + outs[n_c:]

    def derivative(self, op, ins) -> list:
        """``ad.jvp`` / ``ad.frule_via_ad`` / ``ad.vjp`` inside a rule: the
        derivative is linear in the tangents (cotangents) it is given, and
        not in the point it is taken at."""
        n_p = ad.segment_sizes(op)[0]
        primals, seeds = ins[:n_p], ins[n_p:]
        n_out = len(func_type(find_func(self.module_op, ad.callee_of(op))).results)
        outs = self.function(ad.callee_of(op), primals, op.location)
        if any(s == LINEAR or isinstance(s, Bad) for s in primals):
            bad = Bad(f"differentiates ({op.name}) at a point that depends on a tangent",
                      op.location)
            return [bad] * len(op.results)
        d = ZERO
        for s in seeds:
            d = _join(d, s, op)
        return list(outs) + [d] * (len(op.results) - n_out)


def linearity(module_op, fn_name: str, linear_args: Sequence[bool]) -> list:
    """The state of each result of ``@fn_name`` when the arguments flagged in
    ``linear_args`` are the tangents (the others constants): ``"zero"``,
    ``"const"``, ``"linear"`` or a :class:`Bad`."""
    fn = find_func(module_op, fn_name)
    return _Analysis(module_op).function(
        fn_name, [LINEAR if f else CONST for f in linear_args], fn.location)


def check_linear(module_op, fn_name: str, linear_args: Sequence[bool],
                 outputs: Optional[Sequence[int]] = None, what: str = "output") -> None:
    """Raise :class:`NotTransposable` unless the chosen results of
    ``@fn_name`` are linear in the flagged arguments (or zero)."""
    states = linearity(module_op, fn_name, linear_args)
    fn = find_func(module_op, fn_name)
    ret = block_ops(func_body(fn))[-1]
    types = list(func_type(fn).results)
    for k in (range(len(states)) if outputs is None else outputs):
        elt = ir.RankedTensorType(types[k]).element_type if isinstance(
            types[k], ir.RankedTensorType) else types[k]
        if not isinstance(elt, (ir.F32Type, ir.F64Type, ir.F16Type, ir.BF16Type)):
            continue            # an integer or bool result has no tangent to be linear in
        s = states[k]
        if isinstance(s, Bad):
            raise NotTransposable(s)
        if s == CONST:
            raise NotTransposable(Bad(
                f"returns, as {what} {k + 1}, a value that does not depend on the tangents "
                f"and is not zero (the map is affine, not linear)", ret.location))


# -- building the transposed functions ------------------------------------------------

_BUILDING: set = set()


def _guarded(key: str, build):
    if key in _BUILDING:
        raise NotTransposable(Bad("uses the rule itself on a tangent, so its transpose would "
                                  "need itself", ir.Location.unknown()))
    _BUILDING.add(key)
    try:
        return build()
    finally:
        _BUILDING.discard(key)


def frule_pullback(module_op, op: ir.Operation, ybar_mask: List[bool], wanted: List[bool],
                   strategy: str = "auto") -> ir.Operation:
    """For an ``ad.custom_frule`` op: ``@…(x..., ẋ..., nonzero ȳ...) -> (ẏ...,
    x̄ (zeros)..., ẋ̄...)``, the reverse pass's VJP of the frule's tangent
    map. Call it with ``ẋ = 0``; ``ẋ̄`` (results ``m + n`` to ``m + 2n``) is
    the argument cotangents. Raises :class:`NotTransposable`."""
    frule = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["frule"]).value)
    name = func_name(frule)
    n, m = len(op.operands), len(op.results)
    arg_types = list(func_type(frule).inputs)
    tangent = ad.new_func(module_op, f"{name}_tangents", arg_types, op.location)
    with ir.InsertionPoint(func_body(tangent)), op.location:
        res = ad.call(frule, list(func_body(tangent).arguments))
    ad.finish_func(tangent, res[m:])
    try:
        check_linear(module_op, func_name(tangent), [False] * n + [True] * n,
                     what="tangent output")

        def build():
            return ad.builder("vjp")(module_op, func_name(tangent), ybar_mask, op.location,
                                     strategy, [False] * n + list(wanted))
        return _guarded(name, build)
    finally:
        tangent.erase()


def pullback_pushforward(module_op, op: ir.Operation, tangent_mask: List[bool]) -> ir.Operation:
    """For an ``ad.custom_rrule`` op: ``@…(res..., ȳ..., nonzero ẋ...) ->
    (x̄..., res̄ (zeros)..., ẏ...)``, the reverse pass's VJP of the rule's
    pullback with respect to the cotangents. Call it with ``ȳ = 0``; the
    last ``m`` results are the output tangents. Raises :class:`NotTransposable`."""
    pb = ir.FlatSymbolRefAttr(op.attributes["pullback"]).value
    n_res = ad.int_attr(op, "num_residuals")
    m = len(op.results)
    check_linear(module_op, pb, [False] * n_res + [True] * m, what="cotangent")
    return _guarded(pb, lambda: ad.builder("vjp")(module_op, pb, tangent_mask, op.location,
                                                  "auto", [False] * n_res + [True] * m))


def rule_name(op: ir.Operation) -> str:
    return ir.StringAttr(op.attributes["rule"]).value


def primitive_name(op: ir.Operation) -> str:
    """The primitive's name: its primal's symbol without the suffix that
    made it unique (``f_1``) or named its frule wrapper."""
    return re.sub(r"(_with_frule)?(_\d+)?$", "", ad.callee_of(op)) or ad.callee_of(op)


def not_transposable_message(op: ir.Operation, e: NotTransposable, mode: str) -> str:
    """The error for a rule that cannot serve ``mode`` ("reverse" or "forward")."""
    prim, rule, at = primitive_name(op), rule_name(op), loc_where(op.location)
    if mode == "reverse":
        return (f"@{prim} (called at {at}) has an frule, {rule}, but no rrule, so reverse "
                f"mode transposes the frule's tangent map; it cannot: the map must be linear "
                f"in the tangents, and {e}. Give {prim} an rrule (@rules.rrule), or make "
                f"{rule} linear in its tangents")
    return (f"@{prim} (called at {at}) has an rrule, {rule}, but no frule, so forward mode "
            f"transposes the rule's pullback; it cannot: the pullback must be linear in the "
            f"cotangents, and {e}. Give {prim} an frule (@rules.frule), or make the pullback "
            f"of {rule} linear in its cotangents")


def residuals_are_args(module_op, op: ir.Operation) -> bool:
    """Whether an ``ad.custom_rrule``'s ``@forward`` returns, as residuals,
    exactly its arguments (how ferrule's frontend builds it)."""
    fwd = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["forward"]).value)
    n_res = ad.int_attr(op, "num_residuals")
    if n_res != len(op.operands):
        return False
    ret = block_ops(func_body(fwd))[-1]
    res = list(ret.operands)[len(op.results):]
    return all(r == a for r, a in zip(res, func_body(fwd).arguments))


__all__ = ["linearity", "check_linear", "frule_pullback", "pullback_pushforward",
           "NotTransposable", "not_transposable_message", "residuals_are_args"]

"""Emit straight-line ``arith`` code on scalars or fixed-size vectors.

An :class:`Emitter` is bound to one value type (``f32``, ``f64`` or a
``vector<...>`` of them) and creates ops at the current insertion point and
location. Its companions share the shape: ``e.int_type`` (same-width signless
integer), ``e.bool_type`` (``i1``), so bit tricks (``bitcast``, shifts) and
``select`` work lane-wise on vectors exactly as on scalars. Constants are
splats, created once per emitter.

Floating-point ops carry no fast-math flags (the callers rely on exact IEEE
rounding, e.g. in Cody-Waite range reduction) except in :meth:`Emitter.poly`,
where ``contract`` lets LLVM fuse Horner steps into FMAs.
"""

from typing import Dict, Sequence, Tuple

from mlir import ir

from ...dialect.ir_utils import cmpf_attrs, create

_ICMP = {"eq": 0, "ne": 1, "slt": 2, "sle": 3, "sgt": 4, "sge": 5}


def float_kind(t: ir.Type):
    """(element width, vector shape or None) if ``t`` is an f32/f64 scalar or
    fixed-size vector of them; None otherwise (tensors, scalable vectors...)."""
    shape = None
    if isinstance(t, ir.VectorType):
        if t.scalable:
            return None
        shape, t = list(t.shape), t.element_type
    if isinstance(t, ir.F32Type):
        return 32, shape
    if isinstance(t, ir.F64Type):
        return 64, shape
    return None


class Emitter:
    """Creates lane-wise arith ops for values of float type ``ftype``."""

    def __init__(self, ftype: ir.Type):
        width, self.shape = float_kind(ftype)
        self.width = width
        self.float_type = ftype
        self.int_type = self._shaped(ir.IntegerType.get_signless(width))
        self.bool_type = self._shaped(ir.IntegerType.get_signless(1))
        self._consts: Dict[Tuple[str, object], ir.Value] = {}
        self._siblings: Dict[int, "Emitter"] = {width: self}
        self._contract = ir.Attribute.parse("#arith.fastmath<contract>")

    def with_width(self, width: int) -> "Emitter":
        """The emitter of the same shape for f32 (32) or f64 (64) elements
        (one per width, so constants are shared)."""
        if width not in self._siblings:
            elt = ir.F32Type.get() if width == 32 else ir.F64Type.get()
            sibling = Emitter(self._shaped(elt))
            sibling._siblings = self._siblings
            self._siblings[width] = sibling
        return self._siblings[width]

    def _shaped(self, elt: ir.Type) -> ir.Type:
        return elt if self.shape is None else ir.VectorType.get(self.shape, elt)

    # Constants.
    def _const(self, kind: str, t: ir.Type, attr: ir.Attribute, key) -> ir.Value:
        if (kind, key) not in self._consts:
            value = attr if self.shape is None else ir.DenseElementsAttr.get_splat(t, attr)
            self._consts[(kind, key)] = create("arith.constant", [t], [],
                                               {"value": value}).result
        return self._consts[(kind, key)]

    def f(self, x: float) -> ir.Value:
        """A float constant (``x`` rounded to the element type)."""
        elt = ir.F32Type.get() if self.width == 32 else ir.F64Type.get()
        return self._const("f", self.float_type, ir.FloatAttr.get(elt, x), repr(x))

    def i(self, x: int) -> ir.Value:
        """An integer constant, taken modulo 2**width."""
        elt = ir.IntegerType.get_signless(self.width)
        x = (x + (1 << self.width)) % (1 << self.width)
        if x >= 1 << (self.width - 1):
            x -= 1 << self.width
        return self._const("i", self.int_type, ir.IntegerAttr.get(elt, x), x)

    # Generic op creation.
    def op(self, name: str, result_type: ir.Type, *operands: ir.Value, **attrs) -> ir.Value:
        return create(name, [result_type], list(operands), attrs).result

    def _fop(self, name, a, b, contract=False):
        attrs = {"fastmath": self._contract} if contract else {}
        return self.op(name, self.float_type, a, b, **attrs)

    # Float arithmetic (operands may be Values or Python numbers).
    def _v(self, x):
        return x if isinstance(x, ir.Value) else self.f(x)

    def add(self, a, b):
        return self._fop("arith.addf", self._v(a), self._v(b))

    def sub(self, a, b):
        return self._fop("arith.subf", self._v(a), self._v(b))

    def mul(self, a, b):
        return self._fop("arith.mulf", self._v(a), self._v(b))

    def div(self, a, b):
        return self._fop("arith.divf", self._v(a), self._v(b))

    def neg(self, a):
        return self.op("arith.negf", self.float_type, a)

    def abs(self, a):
        return self.op("math.absf", self.float_type, a)

    def copysign(self, magnitude, sign):
        return self.op("math.copysign", self.float_type, magnitude, sign)

    def poly(self, x: ir.Value, coeffs: Sequence[float]) -> ir.Value:
        """Horner: ``coeffs[0]*x**(n-1) + ... + coeffs[-1]``."""
        acc = self.f(coeffs[0])
        for c in coeffs[1:]:
            acc = self._fop("arith.addf", self._fop("arith.mulf", acc, x, True),
                            self.f(c), True)
        return acc

    # Comparisons and selection.
    def cmp(self, pred: str, a, b) -> ir.Value:
        """``arith.cmpf``; ``pred`` is one of oeq ogt oge olt ole one ord ult une uno."""
        return self.op("arith.cmpf", self.bool_type, self._v(a), self._v(b),
                       **cmpf_attrs(pred))

    def icmp(self, pred: str, a, b) -> ir.Value:
        return self.op("arith.cmpi", self.bool_type, self._iv(a), self._iv(b),
                       predicate=ir.IntegerAttr.get(ir.IntegerType.get_signless(64),
                                                    _ICMP[pred]))

    def select(self, cond, a, b):
        """``cond ? a : b``; a Python int operand is an integer constant, a
        Python float a float constant."""
        a, b = self._scalar_const(a), self._scalar_const(b)
        return self.op("arith.select", a.type, cond, a, b)

    def _scalar_const(self, x):
        if isinstance(x, ir.Value):
            return x
        return self.i(x) if isinstance(x, int) else self.f(x)

    def clamp(self, x, lo: float, hi: float):
        """min(max(x, lo), hi) with NaN passing through unchanged."""
        x = self.select(self.cmp("olt", x, lo), lo, x)
        return self.select(self.cmp("ogt", x, hi), hi, x)

    # Integer arithmetic and conversions.
    def _iv(self, x):
        return x if isinstance(x, ir.Value) else self.i(x)

    def _iop(self, name, a, b):
        return self.op(name, self.int_type, self._iv(a), self._iv(b))

    def iadd(self, a, b):
        return self._iop("arith.addi", a, b)

    def isub(self, a, b):
        return self._iop("arith.subi", a, b)

    def imul(self, a, b):
        return self._iop("arith.muli", a, b)

    def iand(self, a, b):
        return self._iop("arith.andi", a, b)

    def ior(self, a, b):
        return self._iop("arith.ori", a, b)

    def ixor(self, a, b):
        return self._iop("arith.xori", a, b)

    def shl(self, a, b):
        return self._iop("arith.shli", a, b)

    def ashr(self, a, b):
        return self._iop("arith.shrsi", a, b)

    def lshr(self, a, b):
        return self._iop("arith.shrui", a, b)

    def to_int_bits(self, x):
        return self.op("arith.bitcast", self.int_type, x)

    def from_int_bits(self, n):
        return self.op("arith.bitcast", self.float_type, n)

    def sitofp(self, n):
        return self.op("arith.sitofp", self.float_type, n)

    def extui(self, n, to: "Emitter") -> ir.Value:
        """Zero-extend the integer ``n`` (of this emitter) to ``to``'s int type."""
        return self.op("arith.extui", to.int_type, n)

    def convert(self, x: ir.Value, to: "Emitter") -> ir.Value:
        """Extend or truncate the float ``x`` (of this emitter) to ``to``'s type."""
        if to.width == self.width:
            return x
        name = "arith.extf" if to.width > self.width else "arith.truncf"
        return self.op(name, to.float_type, x)

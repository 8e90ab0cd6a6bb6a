"""expand-narrow-floats: f16/bf16 <-> f32 conversions as integer code.

Why: float16 and bfloat16 arrays are stored narrow and computed in float32
(docs/dtypes.md), so the CPU code converts at every load and store of one.
LLVM lowers those ``fpext``/``fptrunc`` to instructions only on hosts with
F16C / AVX512-BF16; elsewhere to calls of ``__extendhfsf2``,
``__truncsfhf2`` and ``__truncsfbf2`` (compiler-rt, libgcc >= 12/13), which
the in-process JIT does not find, so loading the code would fail. Written
out here the conversions need nothing from the host and give numpy's bits.
The CPU pipeline leaves float16 to LLVM on hosts with F16C, whose
instructions are exact (but quiet signalling NaNs) and faster: ``a * b + 1``
on 2^24 float16 values ran in 5.4 ms with them, 9.6 ms with this pass's
code. bfloat16 is always expanded: AVX512-BF16's conversion flushes
subnormals to zero (``CpuOptions.narrow_conversions``,
``codegen.host_narrow_conversions``).

Expects: any module; ops at any depth. Meant to run after
``convert-linalg-to-loops``, before ``convert-arith-to-llvm``.
Options: ``f16``, ``bf16`` (default ``true``): which of the two to expand.
Guarantees: every ``arith.extf`` from ``f16``/``bf16`` to ``f32`` and every
``arith.truncf`` from ``f32`` to ``f16``/``bf16`` whose operand is a scalar
or a fixed-size vector is replaced by integer and float ``arith`` code (its
location kept); so is every ``arith.sitofp``/``uitofp`` to f16/bf16 (which
canonicalisation makes of ``truncf(sitofp x)``: it becomes the ``sitofp``
to f32 and the written-out ``truncf``, the traced program's two roundings)
and every ``arith.fptosi``/``fptoui`` from f16/bf16 (the written-out
``extf``, then the conversion from f32), for which LLVM would otherwise
call runtime functions the JIT does not have (``i32 + bf16`` crashed). Extension is exact (NaN payloads kept, subnormals
included); truncation rounds to nearest, ties to even, as numpy's
``astype``: overflow gives +-inf, tiny values round through the subnormals
to +-0, NaN stays a (quiet) NaN with its sign. Checked bit for bit against
numpy on every f16 and bf16 value and on a sweep of f32 values
(tests/test_narrow_dtypes.py). Other ``extf``/``truncf`` ops (f32 <-> f64,
tensors) are left alone.
"""

from mlir import ir

from .support.arith_emit import Emitter
from .support.registry import register

F32_EXP_BIAS_GAP = 112 << 23     # (127 - 15) << 23: f32 minus f16 exponent bias
F16_MIN_NORMAL_BITS = 0x38800000  # 2**-14 as f32 bits
F16_OVERFLOW_BITS = 0x477FF000    # 65520.0: from here on f16 rounds to inf


def _narrow_kind(t: ir.Type):
    """``"f16"``/``"bf16"`` for a scalar or fixed vector of them, else None."""
    if isinstance(t, ir.VectorType):
        if t.scalable:
            return None
        t = t.element_type
    name = str(t)
    return name if name in ("f16", "bf16") else None


def _shaped(like: ir.Type, elt: ir.Type) -> ir.Type:
    if isinstance(like, ir.VectorType):
        return ir.VectorType.get(list(like.shape), elt)
    return elt


def _extend(e: Emitter, x: ir.Value, kind: str) -> ir.Value:
    """f16/bf16 ``x`` as f32 (exact)."""
    i16 = _shaped(x.type, ir.IntegerType.get_signless(16))
    h = e.op("arith.extui", e.int_type, e.op("arith.bitcast", i16, x))
    if kind == "bf16":   # bf16 is the high half of an f32
        return e.from_int_bits(e.shl(h, 16))
    sign = e.shl(e.iand(h, 0x8000), 16)
    em = e.iand(h, 0x7FFF)                  # exponent and mantissa
    exp = e.iand(em, 0x7C00)
    normal = e.iadd(e.shl(em, 13), F32_EXP_BIAS_GAP)
    inf_nan = e.iadd(e.shl(em, 13), (255 - 31) << 23)
    # subnormal or zero: mantissa * 2**-24, exact in f32
    tiny = e.to_int_bits(e.mul(e.op("arith.uitofp", e.float_type, em), 2.0 ** -24))
    bits = e.select(e.icmp("eq", exp, 0), tiny,
                    e.select(e.icmp("eq", exp, 0x7C00), inf_nan, normal))
    return e.from_int_bits(e.ior(bits, sign))


def _truncate(e: Emitter, x: ir.Value, kind: str, result_type: ir.Type) -> ir.Value:
    """f32 ``x`` rounded to nearest even f16/bf16."""
    u = e.to_int_bits(x)
    is_nan = e.cmp("uno", x, x)
    if kind == "bf16":
        lsb = e.iand(e.lshr(u, 16), 1)
        rounded = e.lshr(e.iadd(u, e.iadd(lsb, 0x7FFF)), 16)
        h = e.select(is_nan, e.ior(e.lshr(u, 16), 0x40), rounded)   # NaN: quiet, sign kept
    else:
        sign = e.iand(e.lshr(u, 16), 0x8000)
        a = e.iand(u, 0x7FFFFFFF)
        lsb = e.iand(e.lshr(a, 13), 1)
        normal = e.lshr(e.iadd(e.isub(a, F32_EXP_BIAS_GAP), e.iadd(lsb, 0xFFF)), 13)
        # below 2**-14: |x| * 2**24 (exact) rounded to an integer, ties to even
        # (adding 2**23 in f32 rounds so); 1024 there is the smallest normal
        scaled = e.mul(e.abs(x), 2.0 ** 24)
        sub = e.op("arith.fptoui", e.int_type, e.sub(e.add(scaled, 2.0 ** 23), 2.0 ** 23))
        mag = e.select(e.icmp("slt", a, F16_MIN_NORMAL_BITS), sub,
                       e.select(e.icmp("slt", a, F16_OVERFLOW_BITS), normal, 0x7C00))
        h = e.ior(sign, e.select(is_nan, 0x7E00, mag))
    i16 = _shaped(x.type, ir.IntegerType.get_signless(16))
    return e.op("arith.bitcast", result_type, e.op("arith.trunci", i16, h))


INT_TO_FLOAT = ("arith.sitofp", "arith.uitofp")
FLOAT_TO_INT = ("arith.fptosi", "arith.fptoui")


def _expandable(op: ir.Operation, kinds=("f16", "bf16")):
    """The narrow kind of a conversion this pass rewrites, else None."""
    kind = None
    if op.name == "arith.extf" and str(_elt(op.results[0].type)) == "f32":
        kind = _narrow_kind(op.operands[0].type)
    if op.name == "arith.truncf" and str(_elt(op.operands[0].type)) == "f32":
        kind = _narrow_kind(op.results[0].type)
    if op.name in INT_TO_FLOAT:      # canonicalisation folds truncf(sitofp x) into these
        kind = _narrow_kind(op.results[0].type)
    if op.name in FLOAT_TO_INT:
        kind = _narrow_kind(op.operands[0].type)
    return kind if kind in kinds else None


def _f32_like(t: ir.Type) -> ir.Type:
    return _shaped(t, ir.F32Type.get())


def _rewrite(op: ir.Operation, kind: str) -> ir.Value:
    """The replacement of conversion ``op`` (at the insertion point)."""
    x, result_type = op.operands[0], op.results[0].type
    if op.name == "arith.extf":
        return _extend(Emitter(result_type), x, kind)
    if op.name == "arith.truncf":
        return _truncate(Emitter(x.type), x, kind, result_type)
    if op.name in INT_TO_FLOAT:      # through f32: the traced program's own two roundings
        wide = _f32_like(result_type)
        return _truncate(Emitter(wide), Emitter(wide).op(op.name, wide, x), kind, result_type)
    wide = _f32_like(x.type)         # FLOAT_TO_INT: the narrow value is exact in f32
    return Emitter(wide).op(op.name, result_type, _extend(Emitter(wide), x, kind))


def _elt(t: ir.Type) -> ir.Type:
    return t.element_type if isinstance(t, ir.VectorType) else t


@register("expand-narrow-floats")
def expand_narrow_floats(module_op: ir.Operation, f16: str = "true", bf16: str = "true") -> None:
    """Options ``f16``/``bf16`` (``true``/``false``): which conversions to
    write out (the CPU pipeline leaves those the host has instructions for
    to LLVM)."""
    kinds = tuple(k for k, on in (("f16", f16), ("bf16", bf16)) if on == "true")
    todo = []

    def visit(op):
        op = op.operation
        if _expandable(op, kinds):
            todo.append(op)
        return ir.WalkResult.ADVANCE

    module_op.walk(visit)   # collect first: erasing ops while walking is unsafe
    for op in todo:
        kind = _expandable(op, kinds)
        with ir.InsertionPoint(op), op.location:
            new = _rewrite(op, kind)
        op.results[0].replace_all_uses_with(new)
        op.erase()

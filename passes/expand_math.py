"""expand-math: rewrite f32 transcendental ``math`` ops as polynomial ``arith`` code.

Why: ``convert-math-to-llvm`` turns ``math.exp`` etc. into LLVM intrinsics that
end up as scalar libm calls (``expf``...), and a loop containing a call does
not vectorise, so a fused pointwise loop ran ~10x slower than numpy. MLIR's
polynomial approximations are not exposed as a pass in our bindings, so the
kernels are written here, after Cephes (range reduction, minimax polynomials)
and SLEEF (branch-free selects, scaling by building 2^n from bits). Each op
becomes straight-line ``arith`` code, plus ``math.absf``/``math.copysign``
that lower to LLVM intrinsics without libm.

Expects: any module; ops are found at any depth (``scf.for`` bodies,
``linalg.generic`` regions...). Meant to run after ``convert-linalg-to-loops``,
where math ops are on scalars.
Guarantees: every ``math.{exp,exp2,expm1,log,log2,log10,log1p,tanh,sin,cos,
erf}`` whose result is ``f32`` or a fixed-size ``vector<...xf32>`` is replaced
by branch-free code carrying the op's location, within 2 ulp of the true
result for every f32 input (measured exhaustively: max relative error 1.4e-7
where the result is normal; sin, cos and erf, computed in f64, are within
0.51 ulp, and sin/cos reduce huge arguments exactly). IEEE special cases are
kept: NaN propagates, exp overflows to +inf and underflows through subnormals
to 0, log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, sin/cos(+-inf) = NaN,
tanh/erf saturate to +-1, odd functions keep the sign of zero. Fast-math
flags on the original op are ignored (the expansion is exact IEEE code either
way). f64 ops, ops on tensors and all other math ops are left alone (libm is
fine for f64; note that ``math.erf`` has no CPU lowering without this pass).

Scalar f32 ``sin``/``cos`` (loop bodies) reduce arguments below 120 inline
and call ``@__ferrule_trig_big_{0,1}`` (added to the module, public, with
masked vector variants LLVM's loop vectoriser maps the call to) for larger
ones: the exact large-argument reduction costs a vector of small arguments
one test of its mask instead of ~60% of sin's time (1M elements, one
thread: 3.9 -> 1.9 ms; numpy's SIMD sin 2.0 ms). Vector-typed sin/cos
keep the branch-free code.
"""

from typing import Callable, Dict

from mlir import ir

from ..dialect.ir_utils import create
from .support.arith_emit import Emitter, float_kind
from .support.registry import register

# --- exp family ------------------------------------------------------------

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
# Cody-Waite split of ln2: LN2_HI has 9 significant bits, so n * LN2_HI is
# exact for |n| < 2**15 and x - n*LN2_HI loses nothing.
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
# Cephes expf: exp(r) ~ 1 + r + r^2 * P(r) for |r| <= ln2/2.
EXP_P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
         4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]
# Adding 1.5 * 2**23 rounds to an integer (ties to even) for |x| < 2**22, and
# that integer is then the low bits of the sum's representation.
ROUND_MAGIC = 12582912.0
ROUND_MAGIC_BITS = 0x4B400000


def _round(e: Emitter, x):
    """Nearest integer to ``x`` (|x| < 2**22), as (float, i32)."""
    t = e.add(x, ROUND_MAGIC)
    return e.sub(t, ROUND_MAGIC), e.isub(e.to_int_bits(t), ROUND_MAGIC_BITS)


def _pow2(e: Emitter, n):
    """2.0**n built from its bits; valid for -126 <= n <= 127."""
    return e.from_int_bits(e.shl(e.iadd(n, 127), 23))


def _ldexp(e: Emitter, v, n):
    """v * 2**n for -252 <= n <= 254, in two exact-range steps so that
    subnormal and overflowing results are rounded once, correctly."""
    half = e.ashr(n, 1)
    return e.mul(e.mul(v, _pow2(e, half)), _pow2(e, e.isub(n, half)))


def _expm1_poly(e: Emitter, r):
    """exp(r) - 1 for |r| <= ~ln2/2, without the cancellation of subtracting 1."""
    return e.add(r, e.mul(e.mul(r, r), e.poly(r, EXP_P)))


def _reduce_exp(e: Emitter, x):
    """x = n*ln2 + r with |r| <= ~ln2/2; returns (n as i32, expm1(r))."""
    nf, n = _round(e, e.mul(x, LOG2E))
    r = e.sub(e.sub(x, e.mul(nf, LN2_HI)), e.mul(nf, LN2_LO))
    return n, _expm1_poly(e, r)


def exp(e: Emitter, x):
    # Clamping keeps n in _ldexp's range; past the clamp points the true
    # result is already inf (x > 88.73) or rounds to 0 (x < -103.98), and the
    # scaling produces exactly that. NaN passes the clamp and the polynomial.
    n, p = _reduce_exp(e, e.clamp(x, -104.0, 89.0))
    return _ldexp(e, e.add(p, 1.0), n)


def exp2(e: Emitter, x):
    # Here the reduction x - n is exact; only r * ln2 rounds (|r| <= 1/2).
    x = e.clamp(x, -160.0, 130.0)
    nf, n = _round(e, x)
    r = e.mul(e.sub(x, nf), LN2)
    return _ldexp(e, e.add(_expm1_poly(e, r), 1.0), n)


def expm1(e: Emitter, x):
    return e.select(e.cmp("olt", e.abs(x), 2.0 ** -24), x, _expm1_big(e, x))


def _expm1_big(e: Emitter, x):
    """expm1 for |x| >= 2**-24 (smaller x lose the sign of zero and the last
    bit of subnormals, but there expm1(x) rounds to x anyway)."""
    # expm1(x) = 2**n * p + (2**n - 1) = 2 * (s*p + (s - 1/2)) with s = 2**(n-1):
    # s - 1/2 is exact for the n that matter, and s stays finite up to n = 128.
    # Below x = -25 the result rounds to -1, which the formula yields.
    n, p = _reduce_exp(e, e.clamp(x, -25.0, 89.0))
    s = _pow2(e, e.isub(n, 1))
    return e.mul(e.add(e.mul(s, p), e.sub(s, 0.5)), 2.0)


# --- log family ------------------------------------------------------------

SQRT_HALF = 0.707106781186547524
FLT_MIN = 1.17549435e-38
# Cephes logf: log(1 + f) ~ f - f^2/2 + f^3 * P(f) for sqrt(1/2) - 1 <= f < sqrt(2) - 1.
LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
         -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
         2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1]


def _log_parts(e: Emitter, x):
    """Split x > 0 as 2**k * (1 + f), sqrt(1/2) <= 1 + f < sqrt(2); return
    (k as float, f, f*f, y) where log(1 + f) ~ f - f*f/2 + y."""
    # Subnormals: scale into the normal range first, then correct k.
    tiny = e.cmp("olt", x, FLT_MIN)
    bits = e.to_int_bits(e.select(tiny, e.mul(x, 2.0 ** 23), x))
    k = e.isub(e.lshr(bits, 23), e.select(tiny, 126 + 23, 126))
    m = e.from_int_bits(e.ior(e.iand(bits, 0x007FFFFF), 0x3F000000))  # [1/2, 1)
    # Centre the mantissa on 1: m in [1/2, sqrt(1/2)) becomes 2m, k - 1.
    low = e.cmp("olt", m, SQRT_HALF)
    k = e.isub(k, e.select(low, 1, 0))
    f = e.sub(e.select(low, e.add(m, m), m), 1.0)  # exact (Sterbenz)
    z = e.mul(f, f)
    y = e.mul(e.mul(f, z), e.poly(f, LOG_P))
    return e.sitofp(k), f, z, y


def _log_specials(e: Emitter, x, r):
    r = e.select(e.cmp("oeq", x, float("inf")), float("inf"), r)
    r = e.select(e.cmp("oeq", x, 0.0), float("-inf"), r)
    return e.select(e.cmp("ult", x, 0.0), float("nan"), r)  # x < 0 or NaN


def log(e: Emitter, x):
    k, f, z, y = _log_parts(e, x)
    # Small terms first; the large k * LN2_HI last, exactly as Cephes.
    y = e.sub(e.add(y, e.mul(k, LN2_LO)), e.mul(z, 0.5))
    return _log_specials(e, x, e.add(e.add(f, y), e.mul(k, LN2_HI)))


def log2(e: Emitter, x):
    # log2(1 + f) = (f + y) * log2(e), with log2(e) = 1 + LOG2EA so that the
    # large part, f + y + k, is added without rounding the product.
    log2ea = 0.44269504088896340736
    k, f, z, y = _log_parts(e, x)
    y = e.sub(y, e.mul(z, 0.5))
    r = e.add(e.mul(y, log2ea), e.mul(f, log2ea))
    r = e.add(e.add(e.add(r, y), f), k)
    return _log_specials(e, x, r)


def log10(e: Emitter, x):
    # log10(e) and log10(2) split in a short head (exact products) and a tail.
    l10e_hi, l10e_lo = 4.3359375e-1, 7.00731903251827651129e-4
    l102_hi, l102_lo = 3.0078125e-1, 2.48745663981195213739e-4
    k, f, z, y = _log_parts(e, x)
    y = e.sub(y, e.mul(z, 0.5))
    r = e.add(e.mul(e.add(y, f), l10e_lo), e.mul(k, l102_lo))
    r = e.add(e.add(r, e.mul(y, l10e_hi)), e.mul(f, l10e_hi))
    return _log_specials(e, x, e.add(r, e.mul(k, l102_hi)))


def log1p(e: Emitter, x):
    # log1p(x) = log(u) + log(1 + c/u) ~ log(u) + c/u, where u = fl(1 + x)
    # and c is the rounding error of that sum, exact by Fast2Sum (subtract
    # the operand of larger magnitude first).
    u = e.add(x, 1.0)
    c = e.select(e.cmp("olt", e.abs(x), 1.0), e.sub(x, e.sub(u, 1.0)),
                 e.sub(1.0, e.sub(u, x)))
    k, f, z, y = _log_parts(e, u)
    y = e.add(e.sub(e.add(y, e.mul(k, LN2_LO)), e.mul(z, 0.5)), e.div(c, u))
    r = _log_specials(e, u, e.add(e.add(f, y), e.mul(k, LN2_HI)))
    return e.select(e.cmp("oeq", x, 0.0), x, r)  # log1p(-0) = -0


# --- hyperbolic ------------------------------------------------------------

# Cephes tanhf: tanh(a) ~ a + a^3 * P(a^2) for |a| < 0.625.
TANH_P = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
          1.33314422036e-1, -3.33332819422e-1]


def tanh(e: Emitter, x):
    # Work on |x| (tanh is odd) and copy the sign back: that also gives
    # tanh(-0) = -0 and tanh(-inf) = -1.
    a = e.abs(x)
    z = e.mul(a, a)
    small = e.add(e.mul(e.mul(a, z), e.poly(z, TANH_P)), a)
    # tanh(a) = t / (t + 2) with t = expm1(2a): no cancellation. Past a = 10
    # the result rounds to 1, so clamp (NaN passes through).
    t = _expm1_big(e, e.mul(e.select(e.cmp("ogt", a, 10.0), 10.0, a), 2.0))
    big = e.div(t, e.add(t, 2.0))
    return e.copysign(e.select(e.cmp("olt", a, 0.625), small, big), x)


# --- sin, cos -------------------------------------------------------------
# In f64 on |x|, after ARM optimized-routines' sinf/cosf: reduce |x| by pi/2
# (Cody-Waite below 120, Payne-Hanek with integer arithmetic above, so huge
# arguments are exact too), then FreeBSD's f64 kernels on |r| <= pi/4.

# 192 bits of 2/pi after the point, as four 64-bit words with 3 zero bytes in
# front (and zero padding behind): the 32-bit words at byte offsets k, k+4,
# k+8 of this string are ARM's __inv_pio4[k], [k+4], [k+8].
TWO_OVER_PI = 0xA2F9836E4E441529FC2757D1F534DDC0DB6295993C439041
TWO_OVER_PI_WORDS = [((TWO_OVER_PI << 40) >> (192 - 64 * i)) & (2 ** 64 - 1)
                     for i in range(4)]
PIO2_HI = 1.57079632673412561417e+00  # 33 bits: n * PIO2_HI exact for n < 2**20
PIO2_LO = 6.07710050650619224932e-11
PI_2_TIMES_2_M62 = float.fromhex("0x1.921fb54442d18p-62")
ROUND_MAGIC_64 = 6755399441055744.0  # 1.5 * 2**52
# sin(r) ~ r + r^3 P(r^2), cos(r) ~ 1 + r^2 Q(r^2) on |r| <= pi/4 (FreeBSD
# k_sinf.c / k_cosf.c; errors 2**-37.5 and 2**-34.1, far below an f32 ulp).
SIN_P = [0.0000027183114939898219064, -0.000198393348360966317347,
         0.0083333293858894631756, -0.166666666416265235595]
COS_Q = [0.0000243904487962774090654, -0.00138867637746099294692,
         0.0416666233237390631894, -0.499999997251031003120]


def _reduce_small(e: Emitter, a):
    """Cody-Waite: a = (q + 4k) * pi/2 + r, exact enough for 0 <= a < 120
    (an f32 value): return (r as f64, q as i64)."""
    d = e.with_width(64)
    ad = e.convert(a, d)
    t = d.add(d.mul(ad, 0.63661977236758134308), ROUND_MAGIC_64)
    nf = d.sub(t, ROUND_MAGIC_64)
    r = d.sub(d.sub(ad, d.mul(nf, PIO2_HI)), d.mul(nf, PIO2_LO))
    return r, d.to_int_bits(t)


def _reduce_large(e: Emitter, a):
    """Payne-Hanek, valid for f32 a >= 2: (r as f64, q as i64) as above.

    a = m * 2**(E-150): a 96-bit window of 2/pi chosen by the exponent E,
    times the 24-bit mantissa m, gives a*2/pi mod 4 with 62 fractional bits
    in i64 arithmetic (modulo 2**64)."""
    d = e.with_width(64)
    xi = e.extui(e.to_int_bits(a), d)
    idx = d.iand(d.lshr(xi, 26), 15)
    m = d.shl(d.ior(d.iand(xi, 0xFFFFFF), 0x800000), d.iand(d.lshr(xi, 23), 7))
    # The window starts at byte idx of TWO_OVER_PI_WORDS: pick three words,
    # then funnel-shift by whole bytes (>> 1 >> (63 - sh): never shift by 64).
    upper = d.icmp("ne", d.iand(idx, 8), 0)
    a0, a1, a2 = (d.select(upper, TWO_OVER_PI_WORDS[i + 1], TWO_OVER_PI_WORDS[i])
                  for i in range(3))
    sh = d.shl(d.iand(idx, 7), 3)
    q0, q1 = (d.ior(d.shl(hi, sh), d.lshr(d.lshr(lo, 1), d.isub(63, sh)))
              for hi, lo in ((a0, a1), (a1, a2)))
    w0, w1, w2 = d.lshr(q0, 32), d.iand(q0, 0xFFFFFFFF), d.lshr(q1, 32)
    lo = d.iand(d.imul(m, w0), 0xFFFFFFFF)
    f = d.iadd(d.ior(d.lshr(d.imul(m, w2), 32), d.shl(lo, 32)), d.imul(m, w1))
    n = d.lshr(d.iadd(f, 1 << 61), 62)
    return d.mul(d.sitofp(d.isub(f, d.shl(n, 62))), PI_2_TIMES_2_M62), n


def _reduce_pio2(e: Emitter, a):
    """Both reductions, selected by a < 120: for any a >= 0."""
    d = e.with_width(64)
    r_small, q_small = _reduce_small(e, a)
    r_large, q_large = _reduce_large(e, a)
    small = e.cmp("olt", a, 120.0)
    return d.select(small, r_small, r_large), d.select(small, q_small, q_large)


def _quadrant_value(e: Emitter, r, q, shift: int):
    """sin(r + (q + shift) * pi/2) rounded to f32, for f64 r, i64 q."""
    d = e.with_width(64)
    q = d.iadd(q, shift)
    z = d.mul(r, r)
    s = d.add(r, d.mul(d.mul(r, z), d.poly(z, SIN_P)))
    c = d.add(d.mul(z, d.poly(z, COS_Q)), 1.0)
    v = d.select(d.icmp("ne", d.iand(q, 1), 0), c, s)
    v = d.select(d.icmp("ne", d.iand(q, 2), 0), d.neg(v), v)
    return d.convert(v, e)


class _BigTrig:
    """The out-of-line large-argument sin/cos of one module.

    Per ``shift`` (0: sin, 1: cos), a public function
    ``@__ferrule_trig_big_<shift>(a: f32) -> f32`` = sin(a + shift * pi/2)
    for a >= 2 (Payne-Hanek), declared to LLVM's loop vectoriser (the
    ``vector-function-abi-variant`` attribute) as having masked vector
    variants ``..._v<N>(vector<Nxf32>, vector<Nxi1>)`` for N in
    :data:`LANES`, which return at once when no lane is set. A loop that
    calls the scalar function under a condition thus vectorises, calling the
    variant with the condition as its mask. The functions are public only
    so that LLVM keeps the unused variants until the vectoriser has run (it
    would delete private ones first); ``noinline`` keeps the scalar
    function a call the vectoriser can map.
    """
    LANES = (2, 4, 8, 16)

    def __init__(self, module_op: ir.Operation):
        self.module_op = module_op
        self.names: Dict[int, str] = {}

    def where_large(self, e: Emitter, a, fast, shift: int):
        """``fast`` where ``a < 120`` (or NaN), else the call's value."""
        f32 = e.float_type
        name = self._define(shift)
        cond = e.cmp("oge", a, 120.0)
        branch = create("scf.if", [f32], [cond], regions=2)
        then, other = branch.regions[0].blocks.append(), branch.regions[1].blocks.append()
        with ir.InsertionPoint(then):
            v = create("func.call", [f32], [a],
                       {"callee": ir.FlatSymbolRefAttr.get(name)}).result
            create("scf.yield", [], [v])
        with ir.InsertionPoint(other):
            create("scf.yield", [], [fast])
        return branch.result

    def _define(self, shift: int) -> str:
        if shift in self.names:
            return self.names[shift]
        name = f"__ferrule_trig_big_{shift}"
        f32 = ir.F32Type.get()
        variants = ",".join(f"_ZGV_LLVM_M{n}v_{name}({name}_v{n})" for n in self.LANES)
        passthrough = ir.ArrayAttr.get([
            ir.StringAttr.get("noinline"),
            ir.ArrayAttr.get([ir.StringAttr.get("vector-function-abi-variant"),
                              ir.StringAttr.get(variants)])])
        with ir.InsertionPoint(self.module_op.regions[0].blocks[0]), ir.Location.unknown():
            block = self._func(name, [f32], f32, {"passthrough": passthrough})
            with ir.InsertionPoint(block):
                e = Emitter(f32)
                a = block.arguments[0]
                create("func.return", [], [_quadrant_value(e, *_reduce_large(e, a), shift)])
            for n in self.LANES:
                vec = ir.VectorType.get([n], f32)
                mask = ir.VectorType.get([n], ir.IntegerType.get_signless(1))
                block = self._func(f"{name}_v{n}", [vec, mask], vec, {})
                with ir.InsertionPoint(block):
                    a, m = block.arguments
                    any_set = create("vector.reduction", [ir.IntegerType.get_signless(1)], [m],
                                     {"kind": ir.Attribute.parse("#vector.kind<or>")}).result
                    branch = create("scf.if", [vec], [any_set], regions=2)
                    with ir.InsertionPoint(branch.regions[0].blocks.append()):
                        e = Emitter(vec)
                        create("scf.yield", [], [_quadrant_value(e, *_reduce_large(e, a), shift)])
                    with ir.InsertionPoint(branch.regions[1].blocks.append()):
                        create("scf.yield", [], [Emitter(vec).f(0.0)])
                    create("func.return", [], [branch.result])
        self.names[shift] = name
        return name

    @staticmethod
    def _func(name: str, args, result, attrs) -> ir.Block:
        fn = create("func.func", [], [], {
            "sym_name": ir.StringAttr.get(name),
            "function_type": ir.TypeAttr.get(ir.FunctionType.get(list(args), [result])),
            **attrs}, regions=1)
        return fn.regions[0].blocks.append(*args)


def _sin_quadrant(e: Emitter, x, shift: int, big=None):
    """sin(|x| + shift * pi/2), rounded to f32.

    With ``big`` (a scalar f32 emitter's :class:`_BigTrig`), arguments of
    120 and more take an out-of-line call instead of the branch-free
    Payne-Hanek code, which otherwise costs every element ~60% of sin's
    time; the call has masked vector variants, so the loop still
    vectorises and a vector of small arguments skips it."""
    a = e.abs(x)
    if big is None:
        return _quadrant_value(e, *_reduce_pio2(e, a), shift)
    fast = _quadrant_value(e, *_reduce_small(e, a), shift)
    return big.where_large(e, a, fast, shift)


def _nan_unless_finite(e: Emitter, x, v):
    return e.select(e.cmp("olt", e.abs(x), float("inf")), v, float("nan"))


def sin(e: Emitter, x, big=None):
    # sin is odd: flip the sign bit for negative x (keeps sin(-0) = -0).
    v = e.to_int_bits(_sin_quadrant(e, x, 0, big))
    sign = e.iand(e.to_int_bits(x), 0x80000000)
    return _nan_unless_finite(e, x, e.from_int_bits(e.ixor(v, sign)))


def cos(e: Emitter, x, big=None):
    return _nan_unless_finite(e, x, _sin_quadrant(e, x, 1, big))


# --- erf -------------------------------------------------------------------
# In f64 on |x|: least-squares fits on Chebyshev nodes against math.erf (max
# relative error 1e-12 below 1, absolute 6e-10 on [1, 4]); above 4, erf
# rounds to 1 in f32.
ERF_SMALL = [  # erf(a) / a as a polynomial in a^2, 0 <= a < 1
    1.0648788581264924e-06, -1.3933815659926213e-05, 0.00011960685533576773,
    -0.0008543002886752969, 0.0052238016020315975, -0.02686613822519916,
    0.11283791378545703, -0.3761263889367375, 1.1283791670951968]
ERF_LARGE = [  # erf(a) as a polynomial in a - 2.5, 1 <= a <= 4
    1.1272015566038669e-08, -3.512991423449666e-07, 7.886890032632902e-07,
    3.462653705644564e-06, -1.534835104238007e-05, 7.756445382940965e-06,
    8.039429870886716e-05, -0.00025342417796486884, 0.00025947491043387596,
    0.0005445338303643694, -0.0027979812515573155, 0.006116587559796318,
    -0.008622484326748264, 0.00835021177435182, -0.005445701506474516,
    0.002178278504052177, 0.9995930478582286]


def erf(e: Emitter, x):
    d = e.with_width(64)
    a = e.abs(x)
    ad = e.convert(a, d)
    small = d.mul(ad, d.poly(d.mul(ad, ad), ERF_SMALL))
    large = d.poly(d.sub(ad, 2.5), ERF_LARGE)
    v = d.convert(d.select(e.cmp("olt", a, 1.0), small, large), e)
    # erf is odd; copysign also gives erf(-0) = -0. NaN passes both selects.
    return e.copysign(e.select(e.cmp("ogt", a, 4.0), 1.0, v), x)


# --- the pass --------------------------------------------------------------

KERNELS: Dict[str, Callable] = {
    "math.exp": exp, "math.exp2": exp2, "math.expm1": expm1,
    "math.log": log, "math.log2": log2, "math.log10": log10,
    "math.log1p": log1p, "math.tanh": tanh, "math.sin": sin, "math.cos": cos,
    "math.erf": erf,
}


def _expandable(op: ir.Operation) -> bool:
    if op.name not in KERNELS or len(op.results) != 1:
        return False
    kind = float_kind(op.results[0].type)
    return kind is not None and kind[0] == 32


@register("expand-math")
def expand_math(module_op: ir.Operation) -> None:
    # Collect first: erasing ops while walking is unsafe.
    todo = []

    def visit(op):
        op = op.operation
        if _expandable(op):
            todo.append(op)
        return ir.WalkResult.ADVANCE

    module_op.walk(visit)
    big = _BigTrig(module_op)
    for op in todo:
        e = Emitter(op.results[0].type)
        # Scalar sin/cos (loop bodies) call out for huge arguments; vector
        # ones (GPU kernels emulated on the CPU) keep the branch-free code.
        extra = ({"big": big} if op.name in ("math.sin", "math.cos") and e.shape is None
                 else {})
        with ir.InsertionPoint(op), op.location:
            new = KERNELS[op.name](e, *op.operands, **extra)
        op.results[0].replace_all_uses_with(new)
        op.erase()

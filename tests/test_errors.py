"""Errors raised while tracing: their class, their message, and the user's
source line (``file:line``) that each message must name.

The failing operation of each case sits on a line marked ``# E:<id>``; the
message must contain ``<this file>:<that line>``.
"""

import re
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import (ConcretizationError, DTypeError, ShapeError, TracerBoolConversionError,
                     TracingError, UnsupportedOperationError, nn)

X = np.arange(12, dtype=np.float32).reshape(3, 4)


def _line(marker: str) -> int:
    with open(__file__) as fh:
        for k, line in enumerate(fh, 1):
            if line.rstrip().endswith("# " + marker):
                return k
    raise KeyError(marker)


def at(marker: str) -> str:
    """A regex for ``<this file>:<line of marker>``."""
    return re.escape(f"{__file__}:{_line(marker)}")


@dataclass(frozen=True)
class Case:
    id: str
    error: type
    message: str                # regex the message must match (besides file:line)
    fn: Callable
    args: Tuple = (X,)


def _if_on_tracer(x):
    if x.sum() > 0:  # E:if
        return x
    return -x


def _while_on_tracer(x):
    while x.max() > 1.0:  # E:while
        x = x / 2.0
    return x


def _and_on_tracer(x):
    return (x > 0) and x  # E:and


CASES = [
    # -- concrete values needed -------------------------------------------------------
    Case("if", TracerBoolConversionError,
         r"truth value of a traced array .* ferrule\.numpy\.where\(cond, a, b\)", _if_on_tracer),
    Case("while", TracerBoolConversionError, r"truth value", _while_on_tracer),
    Case("and", TracerBoolConversionError, r"truth value", _and_on_tracer),
    Case("float", ConcretizationError, r"float\(\) needs a concrete value.*float32\[3, 4\]",
         lambda x: float(x)),  # E:float
    Case("int", ConcretizationError, r"int\(\) needs a concrete value",
         lambda x: x * int(x[0, 0])),  # E:int
    Case("np.asarray", ConcretizationError, r"conversion to a numpy array",
         lambda x: np.asarray(x)),  # E:np.asarray
    Case("list_index", ConcretizationError, r"using an array as an index",
         lambda x: [1.0, 2.0][x[0, 0]]),  # E:list_index
    Case("np_int64", ConcretizationError,
         r"numpy\.int64\(x\) \(or another conversion .* cast with x\.astype\(numpy\.int64\)",
         lambda x: x + np.int64(x)),  # E:np_int64
    Case("np_float32_0d", ConcretizationError, r"numpy\.float32\(x\) .* x\.astype\(numpy\.float32\)",
         lambda x: x * np.float32(x[0, 0])),  # E:np_float32_0d
    Case("np_r_", UnsupportedOperationError,
         r"numpy\.r_\[\.\.\.\] of traced arrays is not supported.*use ferrule\.numpy\.r_\[\.\.\.\]",
         lambda x: np.r_[x[0], 1.0, x[1]]),  # E:np_r_
    Case("np_c_", UnsupportedOperationError, r"numpy\.c_\[\.\.\.\] .* ferrule\.numpy\.c_",
         lambda x: np.c_[x[0], x[1]]),  # E:np_c_
    # -- unsupported operations -------------------------------------------------------
    Case("matmul_batch", ShapeError,
         r"matmul shapes \(3, 1, 4\) and \(2, 4, 3\): batch dimensions \(3,\) and \(2,\) "
         r"do not broadcast",
         lambda x: fnp.matmul(x.reshape(3, 1, 4), fnp.stack([x.T, x.T]))),  # E:matmul_batch
    Case("where_one_argument", UnsupportedOperationError, r"where\(condition\) with one argument",
         lambda x: fnp.where(x > 0)),  # E:where_one_argument
    Case("repeat_traced_counts", UnsupportedOperationError, r"repeat with traced counts",
         lambda x: fnp.repeat(x, (x[0] > 0).astype(fnp.int32))),  # E:repeat_traced_counts
    Case("tracer_index", DTypeError, r"arrays used as indices must be of integer type, got float32",
         lambda x: x[x[0, 0]]),  # E:tracer_index
    Case("list_of_ints_index_bounds", ShapeError, r"index 3 is out of bounds for axis 0 with size 3",
         lambda x: x[[0, 3]]),  # E:list_of_ints_index_bounds
    Case("numpy_array_index_bounds", ShapeError, r"index -5 is out of bounds for axis 1 with size 4",
         lambda x: x[:, np.array([1, -5])]),  # E:numpy_array_index_bounds
    Case("take_bounds", IndexError, r"index 12 is out of bounds for axis 0 with size 12",
         lambda x: fnp.take(x, np.array([12]))),  # E:take_bounds
    Case("scalar_bool_index", UnsupportedOperationError,
         r"indexing with a scalar bool \(a new axis of length 1 or 0\) is not supported",
         lambda x: x[True]),  # E:scalar_bool_index
    Case("float_left_shift", UnsupportedOperationError, r"left_shift is only supported on "
         r"integer arrays here, got float32", lambda x: x << 2),  # E:float_left_shift
    Case("int_negative_power", DTypeError, r"integers to negative integer powers",
         lambda x: x.astype(np.int32) ** -1),  # E:int_negative_power
    Case("bool_mask", UnsupportedOperationError,
         r"x\[mask\] with a traced boolean mask .* ferrule\.numpy\.where\(mask, x, 0\) or x \* mask",
         lambda x: x[x > 0]),  # E:bool_mask
    # -- dtypes -----------------------------------------------------------------------
    Case("astype_int8", DTypeError, r"astype from float32 to int8 is not supported",
         lambda x: x.astype(np.int8)),  # E:astype_int8
    Case("grad_of_int", DTypeError, r"grad of lambda with respect to argument 1, which holds "
         r"an int32 array: grad needs float arguments",
         lambda x: ferrule.grad(lambda a, i: fnp.sum(a * i), argnums=1)(  # E:grad_of_int
             x, x.astype(np.int32))),
    Case("pullback_int_cotangent", DTypeError, r"cotangent of output 1 \(int64\[\]\) must be "
         r"a float0 array",
         lambda x: ferrule.vjp(lambda a: (fnp.sum(a), fnp.argmax(a)), x)[1](  # E:pullback_int_cotangent
             (1.0, np.zeros((), np.int64)))),
    Case("exp_of_bool", DTypeError, r"exp of a bool array",
         lambda x: fnp.exp(x > 0)),  # E:exp_of_bool
    Case("where_float_condition", DTypeError, r"where\(\) needs a bool condition, got float32",
         lambda x: fnp.where(x, x, 0.0)),  # E:where_float_condition
    Case("complex_constant", DTypeError, r"constant of dtype complex128",
         lambda x: x * np.array([1j, 2, 3, 4])),  # E:complex_constant
    # -- shapes -----------------------------------------------------------------------
    Case("broadcast", ShapeError, r"shapes \(3, 4\), \(5,\) cannot be broadcast together",
         lambda x, y: x + y, (X, np.ones(5, np.float32))),  # E:broadcast
    Case("broadcast_three", ShapeError, r"\(3, 4\), \(3,\) cannot be broadcast",
         lambda x: fnp.where(x > 0, x, x[:, 0])),  # E:broadcast_three
    Case("broadcast_to", ShapeError, r"cannot broadcast \(3, 4\) to \(4, 3\)",
         lambda x: fnp.broadcast_to(x, (4, 3))),  # E:broadcast_to
    Case("broadcast_to_smaller", ShapeError, r"cannot broadcast \(3, 4\) to \(1, 4\)",
         lambda x: fnp.broadcast_to(x, (1, 4))),  # E:broadcast_to_smaller
    Case("matmul_align", ShapeError, r"matmul shapes \(3, 4\) and \(3, 4\) do not align",
         lambda x: x @ x),  # E:matmul_align
    Case("matmul_0d", ShapeError, r"matmul of a 0-d array",
         lambda x: x.sum() @ x),  # E:matmul_0d
    Case("reshape_size", ShapeError,
         r"cannot reshape array of size 12 \(shape \(3, 4\)\) into shape \(5,\)",
         lambda x: x.reshape(5)),  # E:reshape_size
    Case("reshape_two_-1", ShapeError, r"reshape allows one -1",
         lambda x: x.reshape(-1, -1)),  # E:reshape_two_-1
    Case("reshape_-1_indivisible", ShapeError, r"cannot reshape \(3, 4\) into \(5, -1\)",
         lambda x: x.reshape(5, -1)),  # E:reshape_-1_indivisible
    Case("transpose_axes", ShapeError, r"axes \(0, 2\) are not a permutation",
         lambda x: x.transpose(0, 2)),  # E:transpose_axes
    Case("sum_axis", ShapeError, r"axis 2 is out of bounds for 2-d array",
         lambda x: x.sum(axis=2)),  # E:sum_axis
    Case("logsumexp_axis", ShapeError, r"axis -3 is out of bounds",
         lambda x: nn.logsumexp(x, axis=-3)),  # E:logsumexp_axis
    Case("concatenate_shapes", ShapeError, r"concatenate shapes \[\(3, 4\), \(3, 3\)\]",
         lambda x: fnp.concatenate([x, x[:, 1:]], axis=0)),  # E:concatenate_shapes
    Case("concatenate_axis", ShapeError, r"axis 2 is out of bounds for an array of dimension 2",
         lambda x: fnp.concatenate([x, x], axis=2)),  # E:concatenate_axis
    Case("stack_shapes", ShapeError, r"stack needs arrays of one shape",
         lambda x: fnp.stack([x, x[1:]])),  # E:stack_shapes
    Case("split_unequal", ShapeError, r"does not result in an equal division \(4 into 3\)",
         lambda x: fnp.split(x, 3, axis=1)),  # E:split_unequal
    Case("too_many_indices", ShapeError, r"too many indices \(3\) for a 2-d array",
         lambda x: x[0, 0, 0]),  # E:too_many_indices
    Case("index_bounds", ShapeError, r"index 3 is out of bounds for axis 0 with size 3",
         lambda x: x[3]),  # E:index_bounds
    Case("two_ellipses", ShapeError, r"only have one ellipsis",
         lambda x: x[..., 0, ...]),  # E:two_ellipses
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_error_class_message_and_location(case):
    with pytest.raises(case.error, match=case.message) as info:
        ferrule.jit(case.fn)(*case.args)
    assert re.search(at("E:" + case.id), str(info.value)), (
        f"the message does not name {__file__}:{_line('E:' + case.id)}: {info.value}")


def test_error_classes_are_also_builtin_exceptions():
    """``except ValueError`` / ``TypeError`` / ``NotImplementedError`` keep working."""
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, TracingError)
    assert issubclass(DTypeError, TypeError)
    assert issubclass(UnsupportedOperationError, NotImplementedError)
    assert issubclass(TracerBoolConversionError, ConcretizationError)
    for cls in (DTypeError, UnsupportedOperationError, ConcretizationError,
                TracerBoolConversionError):
        assert "Fix" in cls.__doc__, cls  # each docstring gives cause and fix


def test_failed_trace_leaves_the_function_usable():
    calls = []

    def f(x, y):
        calls.append(1)
        return x + y

    g = ferrule.jit(f)
    with pytest.raises(ShapeError):
        g(X, np.ones(5, np.float32))
    np.testing.assert_array_equal(g(X, X), 2 * X)
    with pytest.raises(ShapeError):  # not cached: traced again, fails again
        g(X, np.ones(5, np.float32))
    assert len(calls) == 3


# -- wrong argument dtypes (checked by jit before tracing) ------------------------------

@pytest.mark.parametrize("dtype", [np.complex64, np.int8, np.uint64])
def test_argument_dtype(dtype):
    # float16 and bfloat16 are accepted (tests/test_narrow_dtypes.py)
    with pytest.raises(DTypeError, match=rf"argument of dtype {np.dtype(dtype)} is not "
                                         rf"supported.*float32, float64, float16, bfloat16, "
                                         rf"int32, int64, uint32 and bool"):
        ferrule.jit(lambda x: x * 2.0)(np.ones(3, dtype))


def test_argument_dtype_names_call_site():
    with pytest.raises(DTypeError) as info:
        ferrule.jit(lambda x, y: x * y)(X, np.ones(3, np.int8))  # E:arg_dtype
    assert re.search(at("E:arg_dtype"), str(info.value)), str(info.value)
    assert "argument 1" in str(info.value)


# -- traced arrays that leave their trace -------------------------------------------------

def test_grad_may_close_over_outer_traced_arrays():
    """Closed-over arrays of the enclosing trace are captured as constants of
    the differentiation (their derivative is not taken), as in JAX."""
    def f(x):
        return ferrule.grad(lambda y: (x * y).sum())(x)
    np.testing.assert_allclose(ferrule.jit(f)(X), X)

    def g(x):
        return ferrule.grad(lambda y: (x[0] * y).sum())(x[0])
    np.testing.assert_allclose(ferrule.jit(g)(X), X[0])

    def h(x):
        return ferrule.jvp(lambda y: x * fnp.sin(y), (x,), (fnp.ones_like(x),))[1]
    np.testing.assert_allclose(ferrule.jit(h)(X), X * np.cos(X), rtol=1e-6)


def test_nested_jit_may_close_over_outer_values():
    """A jitted function called while tracing is inlined: same trace, no error."""
    def f(x):
        inner = ferrule.jit(lambda y: x * y)
        return inner(x + 1.0)

    np.testing.assert_array_equal(ferrule.jit(f)(X), X * (X + 1))


def test_escaped_tracer():
    leaked = []

    def f(x):
        leaked.append(x * 2.0)
        return x

    ferrule.jit(f)(X)
    with pytest.raises(TracingError, match=at("E:escaped_outside") + r": .*used outside the "
                                           r"function that traced it"):
        fnp.exp(leaked[0])  # E:escaped_outside
    with pytest.raises(TracingError, match=r"escaped an earlier trace"):
        ferrule.jit(lambda y: y + leaked[0])(X)
    with pytest.raises(TracingError, match=r"another trace"):
        ferrule.jit(lambda y: leaked[0][0] + y)(X)


def test_unlowered_op_is_an_error_not_a_crash():
    """LLVM IR translation segfaults on an op left in another dialect; the
    runtime names it instead (a pipeline bug must not kill the process)."""
    from mlir import ir
    from ferrule.dialect.context import make_context
    from ferrule.runtime.llvm_translate import UnconvertedOpError, translate_to_llvm_ir
    text = """
    llvm.func @f(%a: vector<4xf32>) -> f32 {
      %0 = "vector.extract"(%a) <{static_position = array<i64: 1>}> : (vector<4xf32>) -> f32 loc("user.py":7:3)
      llvm.return %0 : f32
    }"""
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(text)
        with pytest.raises(UnconvertedOpError, match=r"'vector.extract' at .*user.py.*:7"):
            translate_to_llvm_ir(m.operation)
        assert "llvm.func" in str(m)

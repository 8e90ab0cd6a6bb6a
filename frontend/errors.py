"""ferrule's exception classes. Each docstring gives the cause and the fix.

Every error raised while tracing names the user's source line (file:line)
that produced the offending value.
"""


class FerruleError(Exception):
    """Base class of ferrule's errors."""


class TracingError(FerruleError):
    """A Python function could not be traced into MLIR.

    The message names the operation and the user's source line.
    """


class UnsupportedOperationError(TracingError, NotImplementedError):
    """The traced function used an operation ferrule does not implement.

    Fix: express it with the ops in ``ferrule.numpy`` (see the README's op
    table), or register a rule for your own function in ``ferrule.rules``.
    """


class UnsupportedAttributeError(UnsupportedOperationError, AttributeError):
    """A numpy function or array method that ``ferrule.numpy`` / traced
    arrays do not have (``ferrule.numpy.sort``, ``x.cumsum()``). An
    ``AttributeError`` too, so ``hasattr`` and ``getattr(..., default)``
    behave as for any missing attribute."""


class NonConcreteBooleanIndexError(UnsupportedOperationError, IndexError):
    """``x[mask]`` with a *traced* boolean ``mask``: the result's shape
    (the number of true elements) depends on the data (JAX's error of the
    same name). A mask known while tracing (a numpy array) works.

    Fix: keep the shape and zero the rest, ``ferrule.numpy.where(mask, x,
    0)`` or ``x * mask``; a sum over the selection is ``(x * mask).sum()``.
    """


class ConcretizationError(TracingError):
    """A traced array was used where a concrete Python value is needed.

    Under ``jit`` (and ``grad``, ``vjp``, ``jvp``) arrays are symbolic: their
    values exist only when the compiled code runs. Python control flow
    (``if x > 0:``), ``float(x)``, ``np.asarray(x)`` or indexing with a traced
    array need concrete values. Fix: use ``ferrule.numpy.where`` for
    data-dependent choices, or mark the argument static
    (``jit(f, static_argnums=...)``) if it is a configuration value.
    """


class TracerBoolConversionError(ConcretizationError):
    """``bool()`` of a traced array: usually a data-dependent Python ``if``.

    Fix: use ``ferrule.numpy.where(cond, a, b)``.
    """


class ShapeError(TracingError, ValueError):
    """Operands' shapes are incompatible (broadcasting, matmul, reshape...)."""


class DTypeError(TracingError, TypeError):
    """An array has a dtype ferrule does not support, or dtypes do not mix.

    ferrule compiles float32, float64, int32, int64, uint32 and bool arrays;
    integers and bools are not differentiable (``grad`` refuses them in
    ``argnums``; a pullback takes and gives ``ferrule.float0`` for them).
    Fix: convert inputs with ``x.astype(np.float32)`` (or ``np.int32``).
    """


class CompileError(FerruleError):
    """A compiler pass or code generation failed; the message says where."""

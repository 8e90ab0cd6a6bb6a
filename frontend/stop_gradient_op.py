"""``ferrule.stop_gradient``: the identity, with a zero derivative.

(The module is not named ``stop_gradient``: importing it would then bind
``ferrule.stop_gradient`` to the module, which ``ferrule/__init__``'s lazy
attributes could not undo.)"""

from .core import asarray_traced, check_trace, wrap
from .dialect import builders
from .pytree import flatten, unflatten
from .tracing import Tracer, user_location


def stop_gradient(x):
    """``x`` unchanged, but with derivative 0 in forward and reverse mode at
    every order: ``grad(lambda x: x * stop_gradient(x))(3.0) == 3.0``.

    Traced, it is one ``ad.stop_gradient`` op: the forward pass gives it no
    tangent, the reverse pass no cotangent, and ``lower-ad`` replaces it by
    its operand once differentiation is done. ``x`` may be a tuple/list of
    arrays. Outside a trace it returns ``x`` (a ``ferrule.eager`` tape value
    becomes a plain array, off the tape).
    """
    leaves, struct = flatten(x)
    return unflatten(struct, [_one(v) for v in leaves])


def _one(v):
    if isinstance(v, Tracer):
        tr = check_trace(v)
        v = asarray_traced(v)
        with user_location():
            op = builders.stop_gradient(v.value)
        out = wrap(op.result, tr, v.dtype)
        out.weak = v.weak
        return out
    from .eager.tape import Var
    if isinstance(v, Var):
        return v.value
    return v

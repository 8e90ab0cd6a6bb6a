"""Registering rules, and the primitives whose calls they intercept.

Julia dispatches ``rrule(::typeof(f), x...)`` on the function's type; Python
cannot intercept a plain call, so the primal is marked with
:func:`primitive` (like ``jax.custom_vjp``). A call of a primitive asks each
AD that registered a call hook whether the call is for it — ferrule's
compiler (:mod:`ferrule.rules.compiler`) takes calls inside a trace,
``ferrule.eager`` calls on its tape's values — and otherwise just runs the
function. This module imports neither: the ADs register themselves.
"""

import functools
from typing import Callable, Dict, Optional

_RRULES: Dict[Callable, Callable] = {}
_FRULES: Dict[Callable, Callable] = {}
# The AD systems hook primitive calls here, each ``hook(primitive, args)``
# returning NotImplemented when the call is not for it; asked in the order
# they registered (the compiler first: importing ferrule.rules registers it).
_CALL_HOOKS = []


def add_call_hook(hook: Callable) -> None:
    """Let an AD intercept primitive calls (see the module docstring)."""
    if hook not in _CALL_HOOKS:
        _CALL_HOOKS.append(hook)


class OptOut:
    """Returned by a rule (``return rules.opt_out()``) to decline: the AD then
    differentiates the primal itself (ChainRules' ``@opt_out``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "opt_out()"


def opt_out() -> OptOut:
    return OptOut()


class Primitive:
    """A function whose derivative may come from a registered rule."""

    def __init__(self, fn: Callable):
        functools.update_wrapper(self, fn)
        self.fn = fn

    def __call__(self, *args):
        for hook in _CALL_HOOKS:
            out = hook(self, args)
            if out is not NotImplemented:
                return out
        return self.fn(*args)

    def __repr__(self):
        return f"<ferrule primitive {self.__name__}>"


def primitive(fn: Callable) -> Primitive:
    """Mark ``fn`` so that calls to it can use the rules registered for it."""
    return fn if isinstance(fn, Primitive) else Primitive(fn)


def _key(f) -> Callable:
    if isinstance(f, Primitive):
        return f.fn
    raise TypeError(
        f"rules can only be registered for functions marked with @rules.primitive; "
        f"{getattr(f, '__name__', f)!r} is a plain function, so ferrule could not "
        f"intercept its calls. Decorate its definition with @rules.primitive.")


def rrule(f):
    """Decorator: register ``rule(config, *args) -> (y, pullback)`` for ``f``.

    ``pullback(ȳ)`` returns ``(∂f, x̄1, ...)``: the tangent of ``f`` itself
    (usually ``NoTangent()``) and then one cotangent per argument.
    """
    key = _key(f)

    def deco(rule):
        _RRULES[key] = rule
        return rule
    return deco


def frule(f):
    """Decorator: register ``rule(config, tangents, *args) -> (y, ẏ)`` for ``f``,
    with ``tangents = (ḟ, ẋ1, ...)``."""
    key = _key(f)

    def deco(rule):
        _FRULES[key] = rule
        return rule
    return deco


def find_rrule(f) -> Optional[Callable]:
    return _RRULES.get(f.fn if isinstance(f, Primitive) else f)


def find_frule(f) -> Optional[Callable]:
    return _FRULES.get(f.fn if isinstance(f, Primitive) else f)

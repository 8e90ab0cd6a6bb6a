"""Errors of ferrule.eager; each message names the op or the rule."""

from ..errors import FerruleError


class EagerError(FerruleError):
    """Misuse of the eager AD (nested differentiation, a non-float input, a
    Var used where it would be dropped from the tape)."""


class UnsupportedOpError(EagerError, NotImplementedError):
    """A numpy op with no VJP in ``ferrule.eager.vjps`` was applied to a Var.

    Fix: express it with supported ops (``ferrule.eager.supported_ops()``), or
    wrap it in a ``@rules.primitive`` with an rrule.
    """


class RuleError(EagerError, ValueError):
    """A rule, or its pullback, returned the wrong structure, count or shape."""

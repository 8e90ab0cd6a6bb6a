"""Tangent types of ChainRulesCore that ferrule understands.

* ``NoTangent()`` — the value has no tangent space (an integer, a function,
  the ``∂f`` entry of a pullback's result for a plain function);
* ``ZeroTangent()`` — a symbolic zero: no computation, pruned by the passes.
Both become zero arrays of the right shape where an array is needed.
"""


class AbstractZero:
    """Base of the symbolic zeros."""

    __slots__ = ()

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    def __add__(self, other):
        return other

    __radd__ = __add__

    def __mul__(self, other):
        return self

    __rmul__ = __mul__

    def __neg__(self):
        return self


class NoTangent(AbstractZero):
    """No tangent space: differentiating with respect to this is meaningless."""


class ZeroTangent(AbstractZero):
    """A symbolic zero tangent / cotangent."""


"""ferrule functions inside JAX programs (``pip install ferrule[jax]``).

``ferrule.jax.function(f)`` makes a numpy-style ferrule function usable in
``jax.jit``, ``jax.grad`` and ``jax.vjp`` (a ``custom_vjp`` around
``pure_callback``s); see :mod:`ferrule.interop.jax_function` and
docs/interop.md.
"""

# Absolute imports only: this module is ``ferrule.jax``, and ``jax`` below is
# JAX itself.
try:
    import jax as _jax  # noqa: F401
except ImportError as e:   # pragma: no cover - depends on the environment
    raise ImportError("ferrule.jax needs JAX: pip install 'ferrule[jax]'") from e

from ferrule.interop.core import InteropError
from ferrule.interop.jax_function import Function, function

__all__ = ["function", "Function", "InteropError"]

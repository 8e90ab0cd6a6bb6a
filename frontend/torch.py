"""ferrule functions inside PyTorch programs (``pip install ferrule[torch]``).

``ferrule.torch.function(f)`` makes a numpy-style ferrule function a
differentiable torch op (a ``torch.library`` custom op that
``torch.compile`` keeps whole); see :mod:`ferrule.interop.torch_function`
and docs/interop.md.
"""

# Absolute imports only: this module is ``ferrule.torch``, and ``torch``
# below is PyTorch itself.
try:
    import torch as _torch  # noqa: F401
except ImportError as e:   # pragma: no cover - depends on the environment
    raise ImportError("ferrule.torch needs PyTorch: pip install 'ferrule[torch]'") from e

from ferrule.interop.core import InteropError
from ferrule.interop.torch_function import Function, function

__all__ = ["function", "Function", "InteropError"]

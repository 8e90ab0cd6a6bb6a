"""ferrule: an automatic-differentiation compiler for numpy-style Python.

``jit`` traces a function into MLIR; ``grad``/``vjp``/``jvp`` insert ``ad``
ops that compiler passes differentiate (forward mode for pointwise regions,
reverse mode for the rest); LLVM generates the code.

Everything but the error classes is imported on first use (PEP 562
``__getattr__``): ``import ferrule`` alone loads no MLIR and no LLVM, so the
CUDA launcher (``from ferrule.runtime import cuda``) runs on a machine that
has only numpy and the NVIDIA driver, and ``ferrule.runtime.cuda.load(...)``
works after a plain ``import ferrule``.
"""

import importlib

from . import errors
from .errors import (CompileError, ConcretizationError, DTypeError, FerruleError,
                     NonConcreteBooleanIndexError, ShapeError, TracerBoolConversionError,
                     TracingError, UnsupportedOperationError)

__version__ = "0.1.0"

__all__ = ["jit", "compile", "scan", "vmap", "stop_gradient", "float0", "random", "pure_callback",
           "CallbackError", "ShapeDtype", "CudaCompiled", "grad", "value_and_grad", "vjp", "jvp",
           "jacfwd", "jacrev", "hessian", "linearize", "checkpoint", "remat",
           "Jitted", "Lowered", "numpy", "nn", "errors", "pytree",
           "FerruleError", "TracingError", "UnsupportedOperationError",
           "ConcretizationError", "TracerBoolConversionError", "ShapeError",
           "DTypeError", "CompileError", "NonConcreteBooleanIndexError"]

_FROM_API = {"jit", "compile", "ShapeDtype", "CudaCompiled", "Jitted", "Lowered"}
_FROM_TRANSFORMS = {"grad", "value_and_grad", "vjp", "jvp", "linearize"}
_FROM_JACOBIANS = {"jacfwd", "jacrev", "hessian"}
_FROM_CHECKPOINT = {"checkpoint", "remat"}
_SUBPACKAGES = {"numpy", "nn", "pytree", "random", "rules", "eager", "runtime"}


def __getattr__(name):
    if name in _FROM_API:
        from . import api as module
        value = getattr(module, name)
    elif name in _FROM_TRANSFORMS:
        from . import transforms as module
        value = getattr(module, name)
    elif name in _FROM_JACOBIANS:
        from . import jacobians as module
        value = getattr(module, name)
    elif name in _FROM_CHECKPOINT:
        from . import checkpointing as module
        value = getattr(module, name)
    elif name == "scan":
        from .control import scan as value
    elif name == "vmap":
        from .vmap import vmap as value
    elif name == "stop_gradient":
        from .stop_gradient_op import stop_gradient as value
    elif name == "float0":
        from .pytree import FLOAT0 as value
    elif name == "pure_callback":
        from .callback import pure_callback as value
    elif name == "CallbackError":
        from .runtime.cpu.callbacks import CallbackError as value
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'ferrule' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | _FROM_API | _FROM_TRANSFORMS | _FROM_JACOBIANS | _FROM_CHECKPOINT
               | _SUBPACKAGES
                  | {"scan", "vmap", "stop_gradient", "float0", "pure_callback", "CallbackError"})

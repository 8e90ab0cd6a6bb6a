"""ferrule: an automatic-differentiation compiler for numpy-style Python.

``jit`` traces a function into MLIR; ``grad``/``vjp``/``jvp`` insert ``ad``
ops that compiler passes differentiate (forward mode for pointwise regions,
reverse mode for the rest); LLVM generates the code.
"""

from . import errors, nn, numpy
from .api import CudaCompiled, Jitted, Lowered, ShapeDtype, compile, jit
from .transforms import grad, jvp, value_and_grad, vjp
from .control import scan
from .stop_gradient import stop_gradient
from .tracing import FLOAT0 as float0
from . import random
from .errors import (CompileError, ConcretizationError, DTypeError, FerruleError,
                     ShapeError, TracerBoolConversionError, TracingError,
                     UnsupportedOperationError)

__version__ = "0.1.0"

__all__ = ["jit", "compile", "scan", "stop_gradient", "float0", "random", "ShapeDtype", "CudaCompiled", "grad", "value_and_grad", "vjp", "jvp", "Jitted", "Lowered", "numpy", "nn", "errors",
           "FerruleError", "TracingError", "UnsupportedOperationError",
           "ConcretizationError", "TracerBoolConversionError", "ShapeError",
           "DTypeError", "CompileError"]

"""ferrule: an automatic-differentiation compiler for numpy-style Python.

``jit`` traces a function into MLIR; ``grad``/``vjp``/``jvp`` insert ``ad``
ops that compiler passes differentiate (forward mode for pointwise regions,
reverse mode for the rest); LLVM generates the code.
"""

from . import errors, nn, numpy, pytree
from .api import CudaCompiled, Jitted, Lowered, ShapeDtype, compile, jit
from .transforms import grad, jvp, value_and_grad, vjp
from .control import scan
from .errors import (CompileError, ConcretizationError, DTypeError, FerruleError,
                     ShapeError, TracerBoolConversionError, TracingError,
                     UnsupportedOperationError)

__version__ = "0.1.0"

__all__ = ["jit", "compile", "scan", "ShapeDtype", "CudaCompiled", "grad", "value_and_grad", "vjp", "jvp", "Jitted", "Lowered", "numpy", "nn", "errors", "pytree",
           "FerruleError", "TracingError", "UnsupportedOperationError",
           "ConcretizationError", "TracerBoolConversionError", "ShapeError",
           "DTypeError", "CompileError"]

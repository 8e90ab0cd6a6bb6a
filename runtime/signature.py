"""The calling convention of compiled functions, shared by every target.

A compiled function takes its inputs as arrays that the caller owns and
that it never writes (bufferization is told so: :func:`mark_inputs_readonly`),
and writes its results into output arrays the caller allocates (results
become out-parameters). :class:`Signature` holds the shapes and dtypes on
both sides; :func:`check_inputs` and :func:`prepare_outputs` hold a call to
them.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mlir import ir

from ..dialect.ir_utils import find_func, func_type
from . import output_pool

# Bool tensors are stored as bytes (see passes/workarounds/widen_bools.py): i1
# at the tensor level and i8 after widening are both numpy bools to the caller.
_NP_OF = {"f32": np.float32, "f64": np.float64, "i1": np.bool_,
          "i8": np.bool_, "i32": np.int32, "i64": np.int64, "ui32": np.uint32,
          "f16": np.float16}


def _numpy_dtype(elt: str) -> np.dtype:
    """The numpy dtype of MLIR element type ``elt``. ``bf16`` is
    ``ml_dtypes.bfloat16``, imported only here: a bf16 function exists only
    for a caller who has it (ferrule does not depend on it)."""
    if elt == "bf16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("ferrule.runtime: bf16 arrays need the ml_dtypes package") from None
        return np.dtype(ml_dtypes.bfloat16)
    if elt not in _NP_OF:
        raise TypeError(f"ferrule.runtime: unsupported element type {elt}")
    return np.dtype(_NP_OF[elt])


def dtype_name(d) -> str:
    """``d`` as a string that :func:`dtype_of_name` reads back (numpy's
    ``'<f4'``; ``'bfloat16'`` for bfloat16, whose ``'|V2'`` would lose it)."""
    d = np.dtype(d)
    return "bfloat16" if d.name == "bfloat16" else d.str


def dtype_of_name(s: str) -> np.dtype:
    """The dtype :func:`dtype_name` wrote (``'|V2'``, the only two-byte void
    a spec can hold, is read as bfloat16 too)."""
    return _numpy_dtype("bf16") if s in ("bfloat16", "|V2") else np.dtype(s)


@dataclass(frozen=True)
class TensorSpec:
    """Shape and numpy dtype of one argument or result."""
    shape: Tuple[int, ...]
    dtype: np.dtype

    @staticmethod
    def of_type(t: ir.Type) -> "TensorSpec":
        if isinstance(t, ir.RankedTensorType):
            shape, elt = tuple(t.shape), str(t.element_type)
        else:
            shape, elt = (), str(t)
        return TensorSpec(shape, _numpy_dtype(elt))


@dataclass(frozen=True)
class Signature:
    """A compiled function's name and the specs of its inputs and outputs."""
    func_name: str
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]


def function_signature(module: ir.Module, func_name: str) -> Signature:
    """The :class:`Signature` of ``func_name`` in a tensor-level module."""
    ftype = func_type(find_func(module, func_name))
    return Signature(func_name, tuple(TensorSpec.of_type(t) for t in ftype.inputs),
                     tuple(TensorSpec.of_type(t) for t in ftype.results))


def function_specs(module: ir.Module, func_name: str):
    """``(input specs, output specs)`` of ``func_name`` (lists)."""
    sig = function_signature(module, func_name)
    return list(sig.inputs), list(sig.outputs)


def mark_inputs_readonly(module: ir.Module, func_name: str) -> None:
    """Tell bufferization it may not write into the caller's input arrays."""
    fn = find_func(module, func_name)
    ro = ir.DictAttr.get({"bufferization.writable": ir.BoolAttr.get(False)})
    fn.attributes["arg_attrs"] = ir.ArrayAttr.get([ro] * len(func_type(fn).inputs))


def check_inputs(sig: Signature, arrays: Sequence) -> List[np.ndarray]:
    """``arrays`` as C-contiguous numpy arrays of the specialised shapes and
    dtypes; a ``TypeError`` naming the argument otherwise."""
    if len(arrays) != len(sig.inputs):
        raise TypeError(f"{sig.func_name}: expected {len(sig.inputs)} "
                        f"arrays, got {len(arrays)}")
    out = []
    for k, (a, spec) in enumerate(zip(arrays, sig.inputs)):
        a = np.asarray(a)
        if not a.flags.c_contiguous:  # (ascontiguousarray would make 0-d arrays 1-d)
            a = a.copy(order="C")
        if a.shape != spec.shape or a.dtype != spec.dtype:
            raise TypeError(
                f"{sig.func_name}: argument {k} must be {spec.dtype}"
                f"{list(spec.shape)}, got {a.dtype}{list(a.shape)}")
        out.append(a)
    return out


def prepare_outputs(sig: Signature, out: Optional[Sequence]) -> List[np.ndarray]:
    """New output arrays (large ones with memory reused from outputs that
    died: :mod:`.output_pool`), or the caller's ``out=`` arrays once
    checked (writeable, C-contiguous, the right shapes and dtypes)."""
    if out is None:
        return [output_pool.empty(s.shape, s.dtype) for s in sig.outputs]
    outs = list(out)
    if len(outs) != len(sig.outputs):
        raise TypeError(f"{sig.func_name}: out= needs {len(sig.outputs)} arrays")
    for k, (o, s) in enumerate(zip(outs, sig.outputs)):
        if (not isinstance(o, np.ndarray) or o.shape != s.shape
                or o.dtype != s.dtype or not o.flags.c_contiguous
                or not o.flags.writeable):
            raise TypeError(
                f"{sig.func_name}: out[{k}] must be a writeable C-contiguous "
                f"{s.dtype}{list(s.shape)} array")
    return outs


def separate_outputs(sig: Signature, outs: List[np.ndarray], ins: Sequence[np.ndarray]):
    """Make a call with ``out=`` arrays safe when they overlap the inputs.

    Compiled code assumes its outputs never alias its inputs (inputs are
    read-only to bufferization, results distinct buffers), so an ``out=``
    array that shares memory with an input would be overwritten while it
    is still read. numpy's semantics instead: the results are as if
    computed into fresh arrays and then copied into ``out``.

    Returns ``(outs, back)``: ``outs`` with each array that may overlap an
    input replaced by a fresh one, and ``back``, the ``(position, caller's
    array)`` pairs to copy into after the call (:func:`copy_back`). Two
    ``out=`` arrays that overlap each other are a ``ValueError`` (no order
    of writes makes that meaningful). Bounds-based (``np.may_share_memory``):
    cheap, and for the C-contiguous arrays ``out=`` takes, exact."""
    for j, o in enumerate(outs):
        for k in range(j):
            if np.may_share_memory(o, outs[k]):
                raise ValueError(f"{sig.func_name}: out[{k}] and out[{j}] overlap; each "
                                 f"result needs memory of its own")
    back = []
    for j, o in enumerate(outs):
        if any(np.may_share_memory(o, a) for a in ins):
            back.append((j, o))
    if back:
        outs = list(outs)
        for j, o in back:
            outs[j] = np.empty_like(o)
    return outs, back


def copy_back(outs: List[np.ndarray], back) -> None:
    """After the call: the results computed into fresh arrays go into the
    caller's ``out=`` arrays (:func:`separate_outputs`)."""
    for j, o in back:
        np.copyto(o, outs[j])
        outs[j] = o

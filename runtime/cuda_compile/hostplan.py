"""Turn the host side of an outlined GPU module into plain data.

After ``gpu-kernel-outlining`` the host function is straight-line code:
constants, ``memref.alloc``/``dealloc``, views of buffers, and
``gpu.launch_func``. This module reads it into a JSON-able *call plan* that
:mod:`ferrule.runtime.cuda` executes with the CUDA driver, without MLIR.

Plan format (all plain lists, dicts, ints, floats, strings)::

    {"inputs":  [{"shape": [4, 8], "dtype": "float32"}, ...],
     "outputs": [{"shape": [4, 8], "dtype": "float32"}, ...],
     "constants": [{"nbytes": 128, "data": "<base64>"},
                   {"nbytes": 4096, "splat": "<base64 of one element>"}, ...],
     "steps": [
        {"op": "alloc",  "temp": 0, "nbytes": 4096},
        {"op": "launch", "kernel": "f_k0", "grid": [g, 1, 1],
         "block": [256, 1, 1],
         "args": [{"kind": "input"|"output"|"temp"|"const", "index": i},
                  {"kind": "scalar", "type": "f32"|"f64"|"i32"|"i64",
                   "value": 1.0}, ...]},
        {"op": "free", "temp": 0}]}

A buffer argument is passed as its base device pointer: the kernels use
MLIR's bare-pointer calling convention, and a view's static offset and
strides are compiled into the kernel from its memref type, so a view is
represented by the buffer it looks into.
"""

import base64
from typing import Dict, List, Tuple

import numpy as np
from mlir import ir

from ...dialect.ir_utils import find_symbol

_ELT_BYTES = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8, "i1": 1, "i8": 1,
              "i16": 2, "i32": 4, "i64": 8}
_NP_NAME = {"f16": "float16", "f32": "float32", "f64": "float64", "i1": "bool",
            "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64"}
_VIEW_OPS = frozenset({"memref.subview", "memref.collapse_shape",
                       "memref.expand_shape", "memref.reinterpret_cast",
                       "memref.cast"})


class HostPlanError(Exception):
    """The host function holds something the launcher could not execute."""


def tensor_spec(t: ir.Type) -> dict:
    """``{"shape", "dtype"}`` of a ranked tensor or memref type."""
    shaped = ir.ShapedType(t)
    elt = str(shaped.element_type)
    if elt not in _NP_NAME:
        raise HostPlanError(f"unsupported element type {elt}")
    if not shaped.has_static_shape:
        raise HostPlanError(f"dynamic shape {t}: the GPU path needs static shapes")
    return {"shape": list(shaped.shape), "dtype": _NP_NAME[elt]}


def _nbytes(t: ir.Type) -> int:
    shaped = ir.ShapedType(t)
    n = _ELT_BYTES[str(shaped.element_type)]
    for d in shaped.shape:
        n *= d
    return n


def _const_value(op: ir.Operation):
    attr = op.attributes["value"]
    if isinstance(attr, ir.IntegerAttr):
        return ir.IntegerAttr(attr).value
    if isinstance(attr, ir.FloatAttr):
        return ir.FloatAttr(attr).value
    raise HostPlanError(f"unsupported host constant {attr}")


def _scalar_type(t: ir.Type, index_bits: int) -> str:
    s = str(t)
    if s == "index":
        return f"i{index_bits}"
    if s in ("f32", "f64", "i32", "i64"):
        return s
    raise HostPlanError(f"unsupported scalar kernel argument type {s}")


def _global_constant(module: ir.Module, name: str) -> dict:
    """The plan's entry for ``memref.global @name``: ``{"nbytes", "data"}``,
    or ``{"nbytes", "splat"}`` (one element's bytes) when every element is
    the same — a zero-initialised accumulator needs no megabytes of zeros in
    the artifact."""
    op = find_symbol(module, name, "memref.global")
    if op is None:
        raise HostPlanError(f"memref.global @{name} not found")
    dense = ir.DenseElementsAttr(op.attributes["initial_value"])
    mtype = ir.MemRefType(ir.TypeAttr(op.attributes["type"]).value)
    dtype = np.dtype(_NP_NAME[str(mtype.element_type)])
    if dense.is_splat:
        v = dense.get_splat_value()
        v = ir.FloatAttr(v).value if isinstance(v, ir.FloatAttr) else ir.IntegerAttr(v).value
        one = np.array(v, dtype=dtype).tobytes()
        return {"nbytes": _nbytes(mtype), "splat": base64.b64encode(one).decode("ascii")}
    arr = np.asarray(dense).astype(dtype, copy=False).reshape(mtype.shape)
    data = np.ascontiguousarray(arr).tobytes()
    return {"nbytes": len(data), "data": base64.b64encode(data).decode("ascii")}


def build_plan(module: ir.Module, func_name: str, inputs: List[dict],
               index_bits: int = 64) -> Tuple[dict, Dict[str, List[List[int]]]]:
    """Read the host function ``func_name`` of an outlined module.

    ``inputs`` are the specs of the original (tensor) arguments; the
    remaining memref arguments are the out-parameters, in result order.
    Returns ``(plan, roots)`` where ``roots[kernel]`` lists, for each of the
    kernel's arguments, the buffer id ``[kind, index]`` it points into
    (``[]`` for a scalar) — used to decide which pointers may be noalias.
    """
    fn = find_symbol(module, func_name)
    if fn is None:
        raise HostPlanError(f"no func.func @{func_name}")
    block = fn.regions[0].blocks[0]
    n_in = len(inputs)
    outputs = [tensor_spec(a.type) for a in list(block.arguments)[n_in:]]

    # Python hashes of MLIR values are by pointer; map each to its buffer.
    buf: Dict[ir.Value, Tuple[str, int]] = {}
    for i, a in enumerate(block.arguments):
        buf[a] = ("input", i) if i < n_in else ("output", i - n_in)
    consts: Dict[ir.Value, object] = {}
    constants: List[dict] = []
    steps: List[dict] = []
    roots: Dict[str, List[List[int]]] = {}
    n_temps = 0
    for op in block.operations:
        op = op.operation
        name = op.name
        if name == "arith.constant":
            t = op.results[0].type
            if not isinstance(t, (ir.RankedTensorType, ir.VectorType)):
                consts[op.results[0]] = _const_value(op)
        elif name == "memref.alloc":
            t = op.results[0].type
            if not ir.MemRefType(t).has_static_shape or len(op.operands):
                raise HostPlanError(f"dynamic allocation {op}")
            buf[op.results[0]] = ("temp", n_temps)
            steps.append({"op": "alloc", "temp": n_temps, "nbytes": _nbytes(t)})
            n_temps += 1
        elif name == "memref.dealloc":
            kind, k = buf[op.operands[0]]
            if kind != "temp":
                raise HostPlanError(f"dealloc of a {kind} buffer")
            steps.append({"op": "free", "temp": k})
        elif name == "memref.get_global":
            gname = ir.FlatSymbolRefAttr(op.attributes["name"]).value
            buf[op.results[0]] = ("const", len(constants))
            constants.append(_global_constant(module, gname))
        elif name in _VIEW_OPS:
            src = op.operands[0]
            if src not in buf:
                raise HostPlanError(f"view of an unknown buffer: {op}")
            layout_offset = ir.MemRefType(op.results[0].type).get_strides_and_offset()[1]
            if layout_offset < 0:  # ShapedType.kDynamic is the minimum int64
                raise HostPlanError(f"view with a dynamic offset: {op}")
            buf[op.results[0]] = buf[src]
        elif name == "gpu.launch_func":
            steps.append(_launch_step(op, buf, consts, roots, index_bits))
        elif name == "func.return":
            break
        else:
            raise HostPlanError(
                f"host op {name} cannot run in the CUDA launcher (only "
                f"allocations, views and kernel launches can)")
    plan = {"inputs": list(inputs), "outputs": outputs,
            "constants": constants, "steps": steps}
    return plan, roots


def _launch_step(op, buf, consts, roots, index_bits) -> dict:
    kernel = ir.SymbolRefAttr(op.attributes["kernel"])
    kname = str(kernel).rsplit("::@", 1)[-1].lstrip("@")
    # Operands: [async deps], grid x,y,z, block x,y,z, [cluster], [dyn smem],
    # kernel operands. Our launches have no async deps, clusters or smem.
    ops = list(op.operands)
    sizes = []
    for v in ops[:6]:
        if v not in consts:
            raise HostPlanError(f"launch of {kname}: non-constant grid/block size")
        sizes.append(int(consts[v]))
    args, kroots = [], []
    for v in ops[6:]:
        if v in buf:
            kind, idx = buf[v]
            args.append({"kind": kind, "index": idx})
            kroots.append([kind, idx])
        elif v in consts:
            args.append({"kind": "scalar", "type": _scalar_type(v.type, index_bits),
                         "value": consts[v]})
            kroots.append([])
        else:
            raise HostPlanError(f"launch of {kname}: argument {v} is neither a "
                                f"buffer nor a host constant")
    roots[kname] = kroots
    return {"op": "launch", "kernel": kname, "grid": sizes[:3],
            "block": sizes[3:], "args": args}

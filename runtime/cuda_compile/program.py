"""Compile a tensor-level MLIR function for NVIDIA GPUs, ahead of time.

No GPU is needed here: the result is PTX (and a cubin when ``ptxas`` is on
PATH) plus a plain-data call plan, saved as one artifact file that
:mod:`ferrule.runtime.cuda` runs on a machine with only numpy and the driver.

The pipeline (each stage is kept for :meth:`CudaProgram.as_text`):

1. ``bufferized`` / ``loops``: ``BUFFERIZE``, as on the CPU (inputs
   read-only, results as caller-allocated out-parameters), then
   ``GPU_PARALLEL_LOOPS`` (register-tiled matmuls, parallel loops); the
   pipelines are in :mod:`ferrule.runtime.pipelines`.
2. ``mapped``: :mod:`ferrule.runtime.cuda_compile.mapping` turns each top-level loop
   nest into a ``gpu.launch`` of 256-thread blocks with a grid-stride loop
   (one kernel per fused region; 16-byte vector lanes where
   :mod:`ferrule.runtime.cuda_compile.vectorize` allows).
3. ``gpu``: ``GPU_OUTLINE`` (``gpu-kernel-outlining``). The host function
   is read into the call plan (:mod:`ferrule.runtime.cuda_compile.hostplan`); kernel
   pointer parameters into inputs/constants get ``noalias readonly``, others
   ``noalias`` where no other parameter of that kernel points into the same
   buffer.
4. ``nvvm``: ``nvvm_pipeline`` — ``convert-scf-to-cf``,
   ``convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv}`` inside each
   ``gpu.module`` (kernel parameters are plain pointers), with 32-bit index
   arithmetic when every buffer and loop fits. With ``fast_math``, the
   choices of :mod:`.fast_math` are made on the IR before and after it.
5. ``llvm`` -> ``llvm-opt`` -> ``ptx``: ``translate_module_to_llvmir`` on each
   ``gpu.module``; llvmlite links them with libdevice, optimises and emits PTX
   (:mod:`ferrule.runtime.cuda_compile.target`); ``ptxas -v`` makes the cubin.
"""

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from mlir import ir

from ...passes import run_pipeline
from .. import pipelines
from ..cuda import artifact
from ..llvm_translate import translate_to_llvm_ir
from ..signature import function_specs, mark_inputs_readonly
from . import fast_math as fm
from .hostplan import build_plan
from .mapping import LaunchInfo, map_module_to_gpu
from .target import CudaTarget, assemble, llvm_ir_to_ptx, parse_target, ptxas_available

STAGES = ("bufferized", "loops", "mapped", "gpu", "nvvm", "llvm", "llvm-opt",
          "ptx", "ptxas")


@dataclass
class CudaProgram:
    """A compiled GPU program: PTX, optional cubin, launch metadata, plan.

    ``ptx``: one PTX module holding every kernel (``.entry`` per kernel).
    ``cubin``: ``ptxas`` output for ``target.sm``, or None.
    ``kernels``: name -> {kind, elements, grid, block, grid_stride, and from
    ptxas when present: registers, spill_stores, spill_loads}.
    ``plan``: the host call sequence (see :mod:`ferrule.runtime.cuda_compile.hostplan`).
    """
    func_name: str
    target: CudaTarget
    fast_math: bool
    ptx: str
    cubin: Optional[bytes]
    kernels: Dict[str, dict]
    plan: dict
    stages: Dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def inputs(self) -> List[dict]:
        return self.plan["inputs"]

    @property
    def outputs(self) -> List[dict]:
        return self.plan["outputs"]

    def as_text(self, stage: str = "ptx") -> str:
        """IR after ``stage``: one of :data:`STAGES`."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; stages: "
                             + ", ".join(s for s in STAGES if s in self.stages))
        return self.stages[stage]

    def to_artifact(self) -> dict:
        """The artifact dict (a deep copy: editing it leaves ``self`` alone)."""
        return json.loads(json.dumps(artifact.make(
            function=self.func_name, sm=self.target.sm,
            ptx_version=self.target.ptx_version, fast_math=self.fast_math,
            ptx=self.ptx, cubin=self.cubin, kernels=self.kernels, plan=self.plan)))

    def save(self, path) -> None:
        """Write the single-file artifact (JSON; see ``ferrule.runtime.cuda.artifact``)."""
        artifact.save(self.to_artifact(), path)


def _refuse_narrow(func_name: str, specs, target: str) -> None:
    """float16/bfloat16 arrays are CPU-only for now: a ``TypeError`` rather
    than kernels whose f16/bf16 loads and stores were never run on a GPU."""
    narrow = [s.dtype.name for s in specs if s.dtype.name in ("float16", "bfloat16")]
    if narrow:
        raise TypeError(f"{func_name}: {narrow[0]} arrays are CPU-only for now; target "
                        f"{target!r} does not compile them (convert to float32 first)")


def compile_cuda(module_text: str, func_name: str, ctx: ir.Context,
                 target: str = "sm_90", fast_math: bool = False,
                 ptx_version=None, make_cubin: bool = True) -> CudaProgram:
    """Compile ``func_name`` of a tensor-level module for ``target``.

    ``target``: ``"sm_90"`` / ``"cuda:sm_90"``; ``ptx_version``: e.g. ``80``
    or ``"8.0"`` (default: 8.0, or the chip's minimum if newer). Invalid
    target options raise ``ValueError`` before LLVM sees them.
    ``fast_math``: ``fastmath<fast>`` on every float op in the kernels
    (approximate division, libdevice ``__nv_fast_*`` variants), libdevice's
    flush-to-zero paths, hardware ``tanh.approx`` — results then differ from
    numpy by up to ~1e-3 relative.
    """
    tgt = parse_target(target, ptx_version)   # first: LLVM aborts on bad ones
    stages: Dict[str, str] = {}
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        inputs, outputs = function_specs(module, func_name)
        _refuse_narrow(func_name, inputs + outputs, target)
        in_specs = [{"shape": list(s.shape), "dtype": s.dtype.name} for s in inputs]
        mark_inputs_readonly(module, func_name)
        run_pipeline(module, pipelines.BUFFERIZE)
        stages["bufferized"] = str(module)
        run_pipeline(module, pipelines.GPU_PARALLEL_LOOPS)
        stages["loops"] = str(module)
        infos = {i.name: i for i in map_module_to_gpu(module)}
        module.operation.verify()
        stages["mapped"] = str(module)
        run_pipeline(module, pipelines.GPU_OUTLINE)
        plan, roots = build_plan(module, func_name, in_specs, index_bits=64)
        index_bits = 32 if _fits_int32(plan, infos) else 64
        if index_bits == 32:  # scalar `index` kernel arguments become i32
            plan, roots = build_plan(module, func_name, in_specs, index_bits=32)
        _annotate_kernel_params(module, roots)
        if fast_math:
            fm.mark_arith_and_math(module)
        stages["gpu"] = str(module)
        run_pipeline(module, pipelines.nvvm_pipeline(index_bits))
        if fast_math:
            fm.adjust_llvm_dialect(module, tgt)
        stages["nvvm"] = str(module)
        llvm_irs = [translate_to_llvm_ir(op.operation)
                    for op in module.body.operations
                    if op.operation.name == "gpu.module"]
    stages["llvm"] = "\n".join(llvm_irs)
    ptx, opt_ir = llvm_ir_to_ptx(llvm_irs, infos.keys(), tgt)
    stages["llvm-opt"], stages["ptx"] = opt_ir, ptx
    kernels = {name: _kernel_meta(info) for name, info in infos.items()}
    cubin = None
    if make_cubin:
        res = assemble(ptx, tgt)
        stages["ptxas"] = res.log
        cubin = res.cubin
        if cubin is not None:
            _add_ptxas_facts(kernels, res.log)
        elif ptxas_available():   # PTX still works (the driver JITs it)
            warnings.warn(f"ferrule: no cubin for {func_name}: {res.log.strip()[:500]}")
    return CudaProgram(func_name, tgt, fast_math, ptx, cubin, kernels, plan, stages)


def _kernel_meta(info: LaunchInfo) -> dict:
    d = asdict(info)
    d.pop("name")
    d["grid"], d["block"] = list(info.grid), list(info.block)
    return d


def _fits_int32(plan: dict, infos: Dict[str, LaunchInfo]) -> bool:
    """True when 32-bit index arithmetic cannot overflow: every buffer has
    fewer than 2**31 elements and no grid-stride loop index passes 2**31."""
    limit = 2**31 - 1
    sizes = [_count(s["shape"]) for s in plan["inputs"] + plan["outputs"]]
    sizes += [s["nbytes"] for s in plan["steps"] if s["op"] == "alloc"]
    sizes += [c["nbytes"] for c in plan["constants"]]
    if any(n > limit for n in sizes):   # bytes >= elements: conservative
        return False
    return all(i.elements + i.grid[0] * i.block[0] <= limit for i in infos.values())


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _gpu_funcs(module: ir.Module):
    for op in module.body.operations:
        if op.operation.name != "gpu.module":
            continue
        for inner in op.operation.regions[0].blocks[0].operations:
            if inner.operation.name == "gpu.func":
                yield inner.operation


def _annotate_kernel_params(module: ir.Module, roots: Dict[str, List[list]]) -> None:
    """``llvm.noalias`` + ``llvm.readonly`` on pointers into inputs and
    constants; ``llvm.noalias`` on a pointer into another buffer when no
    other parameter of the same kernel points into that buffer.

    Sound because distinct buffers never overlap (outputs are allocated by
    the launcher, which refuses outputs overlapping inputs) and inputs and
    constants are never written (bufferization was told so) — and noalias
    only forbids overlapping accesses of which one writes. Gives the
    read-only data path (``ld.global.nc``) and lets reductions stay in
    registers.
    """
    for fn in _gpu_funcs(module):
        name = ir.StringAttr(fn.attributes["sym_name"]).value
        kroots = roots.get(name)
        if kroots is None:
            continue
        attrs = []
        for r in kroots:
            d = {}
            if r and r[0] in ("input", "const"):
                d["llvm.noalias"] = ir.UnitAttr.get()
                d["llvm.readonly"] = ir.UnitAttr.get()
            elif r and kroots.count(r) == 1:
                d["llvm.noalias"] = ir.UnitAttr.get()
            attrs.append(ir.DictAttr.get(d))
        fn.attributes["arg_attrs"] = ir.ArrayAttr.get(attrs)


def _add_ptxas_facts(kernels: Dict[str, dict], log: str) -> None:
    """Attach registers and spill bytes from ``ptxas -v`` to each kernel."""
    for m in re.finditer(
            r"Compiling entry function '(\w+)'.*?(\d+) bytes stack frame, "
            r"(\d+) bytes spill stores, (\d+) bytes spill loads.*?Used (\d+) registers",
            log, re.S):
        k = kernels.get(m.group(1))
        if k is not None:
            k.update(stack_frame=int(m.group(2)), spill_stores=int(m.group(3)),
                     spill_loads=int(m.group(4)), registers=int(m.group(5)))

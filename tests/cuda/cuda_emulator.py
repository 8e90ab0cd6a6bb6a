"""A stand-in for libcuda that runs ferrule's kernels on the CPU.

For tests on machines without a GPU: :class:`FakeCuda` answers the driver
calls the launcher makes (device memory is host memory, a pointer is its
address), and ``cuLaunchKernel`` runs a CPU build of the *outlined kernel
itself* — the ``gpu.func`` from the "gpu" stage, with its block and thread
ids turned into loops over the launched grid and block, compiled through
ferrule's CPU pipeline. Kernel parameters are decoded from the launcher's
``void**`` exactly as the GPU would read them: a memref parameter is one
pointer (MLIR's bare-pointer convention), rebuilt here into the descriptor
its static type implies.

Install with ``driver._api = FakeCuda(program, ...)`` on a launcher's
driver module (``ferrule.runtime.cuda.driver`` or a standalone copy's); a
loaded module is matched to its program by the PTX or cubin bytes.
"""

import ctypes
from typing import Dict, List

from mlir import ir
from mlir.dialects import arith, func, scf

from ferrule.dialect.context import make_context
from ferrule.dialect.ir_utils import find_func
from ferrule.passes import run_pipeline
from ferrule.runtime import pipelines
from ferrule.runtime.cpu import CpuFunction, symbol_for
from ferrule.runtime.cpu.codegen import jit_llvm_ir
from ferrule.runtime.signature import TensorSpec
from ferrule.runtime.llvm_translate import translate_to_llvm_ir

ALLOC_ALIGN = 256
ERRORS = {1: "CUDA_ERROR_INVALID_VALUE", 209: "CUDA_ERROR_NO_BINARY_FOR_GPU",
          500: "CUDA_ERROR_NOT_FOUND"}
# Scalar kernel parameters: how the CPU build takes them, and how to read
# what the launcher wrote (an ``index`` is read as i64: 64-bit index mode).
_SCALARS = {"f32": ctypes.c_float, "f64": ctypes.c_double, "i32": ctypes.c_int32,
            "i64": ctypes.c_int64, "index": ctypes.c_int64}


def _kernels_to_cpu(gpu_stage: str):
    """Module text with one ``func.func @K(args..., %grid, %block)`` per
    kernel ``K``; returns (text, {K: [arg type strings]})."""
    ctx = make_context()
    sigs: Dict[str, List[ir.Type]] = {}
    with ctx, ir.Location.unknown():
        m = ir.Module.parse(gpu_stage)
        top = m.body
        idx = ir.IndexType.get()
        for op in list(top.operations):
            op = op.operation
            if op.name == "func.func":          # the host function: not needed
                op.erase()
                continue
            if op.name != "gpu.module":
                continue
            for k in list(op.regions[0].blocks[0].operations):
                k = k.operation
                if k.name != "gpu.func":
                    continue
                _emulate_kernel(k, top, idx, sigs)
            op.erase()
        if "gpu.container_module" in m.operation.attributes:
            del m.operation.attributes["gpu.container_module"]
        return str(m), {n: [str(t) for t in ts] for n, ts in sigs.items()}


def _block_thread_loops(grid: ir.Value, threads: ir.Value):
    """At the insertion point: ``for b < grid: for t < threads: {}``.
    Returns (constant 0, constant 1, outer loop, inner loop, inner yield)."""
    idx = ir.IndexType.get()
    c0 = arith.ConstantOp(idx, 0).result
    c1 = arith.ConstantOp(idx, 1).result
    outer = scf.ForOp(c0, grid, c1)
    with ir.InsertionPoint(outer.body):
        inner = scf.ForOp(c0, threads, c1)
        scf.YieldOp([])
    with ir.InsertionPoint(inner.body):
        end = scf.YieldOp([])
    return c0, c1, outer, inner, end


def _emulate_kernel(k, top, idx, sigs):
    name = ir.StringAttr(k.attributes["sym_name"]).value
    body = k.regions[0].blocks[0]
    types = [a.type for a in body.arguments]
    sigs[name] = types
    with ir.InsertionPoint(top):
        fn = func.FuncOp(name, (types + [idx, idx], []))
    entry = fn.add_entry_block()
    grid, block = entry.arguments[len(types)], entry.arguments[len(types) + 1]
    with ir.InsertionPoint(entry):
        c0, c1, outer, inner, end = _block_thread_loops(grid, block)
        func.ReturnOp([])
    for old, new in zip(body.arguments, entry.arguments):
        old.replace_all_uses_with(new)
    ids = {("gpu.block_id", "x"): outer.induction_variable,
           ("gpu.thread_id", "x"): inner.induction_variable,
           ("gpu.grid_dim", "x"): grid, ("gpu.block_dim", "x"): block}
    for o in list(body.operations):
        o = o.operation
        if o.name == "gpu.return":
            continue
        if o.name in ("gpu.block_id", "gpu.thread_id", "gpu.grid_dim", "gpu.block_dim"):
            dim = str(o.attributes["dimension"]).split()[-1].rstrip(">")
            size_like = o.name in ("gpu.grid_dim", "gpu.block_dim")
            o.results[0].replace_all_uses_with(ids.get((o.name, dim), c1 if size_like else c0))
            o.erase()
            continue
        o.move_before(end)


class FakeCuda:
    """Fake driver: see the module docstring. ``program``: a CudaProgram."""

    def __init__(self, *programs, cc=(9, 0), cubin_loads=True):
        self._programs = [self._build(p) for p in programs]
        self.cc = cc
        self.cubin_loads = cubin_loads
        self.mem: Dict[int, tuple] = {}   # address -> (ctypes buffer, bytes)
        self.loaded = []          # "cubin" / "ptx" per module load
        self.launches = []        # (kernel, grid, block)
        self.syncs = 0            # cuStreamSynchronize calls
        self._modules = []        # module handle - 1 -> program index
        self._functions = []      # function handle - 1 -> (callable, decoder, name)

    def _build(self, program):
        """CPU builds of ``program``'s kernels: (images, {name: (fn, plan)})."""
        text, sigs = _kernels_to_cpu(program.as_text("gpu"))
        ctx = make_context()
        with ctx, ir.Location.unknown():
            m = ir.Module.parse(text)
            run_pipeline(m, pipelines.CPU_TO_LLVM)
            llvm_ir = translate_to_llvm_ir(m.operation)
            protos = {n: self._prototype(n, ts) for n, ts in sigs.items()}
        engine, _ = jit_llvm_ir(llvm_ir)
        kernels = {n: (ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(n)), plan)
                   for n, (argtypes, plan) in protos.items()}
        images = [program.ptx.encode()] + ([program.cubin] if program.cubin else [])
        return {"engine": engine, "kernels": kernels, "images": images}

    @staticmethod
    def _prototype(name, types):
        """(ctypes argtypes, decoder of the launch's void** into call args)."""
        argtypes, plan = [], []
        for t in types:
            if t.startswith("memref"):
                mt = ir.MemRefType(ir.Type.parse(t))
                strides, offset = mt.get_strides_and_offset()
                r = len(mt.shape)
                argtypes += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
                argtypes += [ctypes.c_int64] * (2 * r)
                plan.append(("ptr", list(mt.shape), list(strides), offset))
            else:
                argtypes.append(_SCALARS[t])
                plan.append(("scalar", t))
        return argtypes + [ctypes.c_int64, ctypes.c_int64], plan

    # ---------------------------------------------------------- driver API
    def _set(self, ref, value):
        ref._obj.value = value
        return 0

    def cuInit(self, flags): return 0
    def cuDriverGetVersion(self, v): return self._set(v, 13000)
    def cuDeviceGetCount(self, n): return self._set(n, 1)
    def cuDeviceGet(self, d, ordinal): return self._set(d, ordinal)
    def cuDeviceTotalMem_v2(self, m, d): return self._set(m, 80 << 30)
    def cuDevicePrimaryCtxRetain(self, c, d): return self._set(c, 1)
    def cuCtxSetCurrent(self, c): return 0
    def cuCtxSynchronize(self): return 0
    def cuStreamSynchronize(self, s):
        self.syncs += 1
        return 0
    def cuModuleUnload(self, m): return 0

    def cuDeviceGetName(self, buf, n, d):
        buf.value = b"Fake GPU (CPU emulation)"
        return 0

    def cuDeviceGetAttribute(self, v, attr, d):
        values = {16: 4, 36: 2619000, 37: 5120, 75: self.cc[0], 76: self.cc[1]}
        return self._set(v, values.get(attr, 0))

    def cuModuleLoadDataEx(self, mod, data, n, opts, vals):
        image = bytes(data)
        kind = "cubin" if image[:4] == b"\x7fELF" else "ptx"
        if kind == "cubin" and not self.cubin_loads:
            return 209
        for i, p in enumerate(self._programs):
            if any(image[:len(im)] == im for im in p["images"]):
                self.loaded.append(kind)
                self._modules.append(i)
                return self._set(mod, len(self._modules))
        return 1

    def cuModuleGetFunction(self, fn, mod, name):
        kernels = self._programs[self._modules[mod.value - 1]]["kernels"]
        name = name.decode()
        if name not in kernels:
            return 500
        self._functions.append((*kernels[name], name))
        return self._set(fn, len(self._functions))

    def cuMemAlloc_v2(self, ptr, n):
        # 256-byte aligned, as cuMemAlloc's are: kernels take their vector
        # path on such buffers.
        buf = (ctypes.c_char * (max(1, n) + ALLOC_ALIGN))()
        addr = -(-ctypes.addressof(buf) // ALLOC_ALIGN) * ALLOC_ALIGN
        self.mem[addr] = (buf, n)
        return self._set(ptr, addr)

    def cuMemFree_v2(self, ptr):
        return 0 if self.mem.pop(ptr.value, None) is not None else 1

    def cuMemcpyHtoD_v2(self, dst, src, n):
        ctypes.memmove(dst.value, src.value, n)
        return 0

    def cuMemcpyDtoH_v2(self, dst, src, n):
        ctypes.memmove(dst.value, src.value, n)
        return 0

    def cuMemcpyDtoDAsync_v2(self, dst, src, n, stream):
        ctypes.memmove(dst.value, src.value, n)
        return 0

    cuMemcpyHtoDAsync_v2 = cuMemcpyDtoDAsync_v2
    cuMemcpyDtoHAsync_v2 = cuMemcpyDtoDAsync_v2

    def cuPointerGetAttribute(self, out, attr, ptr):
        p = ptr.value
        for base, (_, n) in self.mem.items():
            if base <= p < base + n:
                return self._set(out, 0)
        return 1

    def cuLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, smem, stream, params, extra):
        cfunc, plan, name = self._functions[fn.value - 1]
        if bx * by * bz > 1024 or (gy, gz, by, bz) != (1, 1, 1, 1):
            return 1
        args = []
        for i, p in enumerate(plan):
            addr = params[i]
            if p[0] == "ptr":
                ptr = ctypes.c_uint64.from_address(addr).value
                args += [ptr, ptr, p[3], *p[1], *p[2]]
            else:
                args.append(_SCALARS[p[1]].from_address(addr).value)
        self.launches.append((name, (gx, gy, gz), (bx, by, bz)))
        cfunc(*args, gx, bx)
        return 0

    def cuEventCreate(self, ev, flags): return self._set(ev, 1)
    def cuEventRecord(self, ev, stream): return 0
    def cuEventSynchronize(self, ev): return 0
    def cuEventDestroy_v2(self, ev): return 0
    def cuEventElapsedTime(self, ms, a, b): return self._set(ms, 1.0)

    def cuGetErrorName(self, code, out):
        out._obj.value = ERRORS.get(code, f"CUDA_ERROR_{code}").encode()
        return 0

    def cuGetErrorString(self, code, out):
        out._obj.value = b"fake driver error"
        return 0


# ------------------------------------------------- mapped modules on the CPU

def launches_to_loops(module: ir.Module, branch=None) -> None:
    """Replace each ``gpu.launch`` of ``module`` (stage "mapped") by loops
    over its blocks and threads, so it runs on the CPU with the kernels'
    real index arithmetic.

    ``branch``: None keeps each vectorised kernel's run-time alignment
    test; "vector" or "scalar" forces the ``scf.if`` it guards.
    """
    for fn in module.body.operations:
        if fn.operation.name != "func.func":
            continue
        block = fn.operation.regions[0].blocks[0]
        for op in list(block.operations):
            op = op.operation
            if op.name != "gpu.launch":
                continue
            grid, threads = op.operands[0], op.operands[3]
            with ir.InsertionPoint(op):
                c0, c1, outer, inner, end = _block_thread_loops(grid, threads)
            body = op.regions[0].blocks[0]
            subst = [outer.induction_variable, c0, c0, inner.induction_variable, c0, c0,
                     grid, c1, c1, threads, c1, c1]
            for arg, v in zip(body.arguments, subst):
                arg.replace_all_uses_with(v)
            for inner_op in list(body.operations)[:-1]:   # drop gpu.terminator
                inner_op = inner_op.operation
                if branch is not None and inner_op.name == "scf.if":
                    with ir.InsertionPoint(end):   # moved ops go before end too
                        flag = arith.ConstantOp(ir.IntegerType.get_signless(1),
                                                int(branch == "vector")).result
                    inner_op.operands[0] = flag
                inner_op.move_before(end)
            op.erase()


def run_mapped_on_cpu(mapped_text: str, name: str, inputs, outputs, arrays,
                      branch=None):
    """Compile a "mapped"-stage module (see :func:`launches_to_loops`) for
    the CPU and call ``name`` on numpy ``arrays``; ``inputs``/``outputs``:
    the plan's ``{"shape", "dtype"}`` specs. Returns the outputs."""
    import numpy as np
    ctx = make_context()
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(mapped_text)
        find_func(module, name).attributes["sym_name"] = ir.StringAttr.get(
            symbol_for(name))
        launches_to_loops(module, branch)
        run_pipeline(module, pipelines.CPU_TO_LLVM)
        llvm_ir = translate_to_llvm_ir(module.operation)
    specs = [[TensorSpec(tuple(s["shape"]), np.dtype(s["dtype"])) for s in ss]
             for ss in (inputs, outputs)]
    fn = CpuFunction(llvm_ir, name, *specs)
    out = [np.empty(s.shape, s.dtype) for s in specs[1]]
    if branch == "vector":   # the forced vector path must see aligned buffers
        assert all(a.ctypes.data % 16 == 0 for a in [*arrays, *out])
    return fn(*arrays, out=out)

"""LLVM code generation with llvmlite: LLVM IR text -> optimised native code.

Why llvmlite rather than MLIR's ExecutionEngine: one LLVM (22.1, like the
MLIR bindings) serves both targets — host object code here and PTX for
``nvptx64`` — and its MCJIT object cache lets compiled code be kept on disk.
"""

import threading
from functools import lru_cache

import llvmlite.binding as llvm

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _init_native():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


def host_target_machine():
    """A new target machine for this CPU, with all its features (AVX-512 etc.).

    Not cached: an MCJIT engine takes ownership of its target machine and
    frees it with itself, so each engine needs its own.
    """
    _init_native()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),
        opt=3, jit=True)


@lru_cache(maxsize=1)
def host_vector_bytes() -> int:
    """Width in bytes of this CPU's widest float vector registers that LLVM
    will use: 64 with AVX-512, else 32 (AVX2; a 32-byte vector is two
    registers on narrower machines, which LLVM splits)."""
    features = llvm.get_host_cpu_features()
    return 64 if features.get("avx512f") else 32


def optimize(module: "llvm.ModuleRef", tm, speed_level: int = 3) -> None:
    """Run LLVM's O-level pipeline (with loop and SLP vectorisation)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def jit_llvm_ir(llvm_ir: str, object_cache=None):
    """Parse, optimise and JIT ``llvm_ir`` for the host.

    Returns ``(engine, module)``; keep the engine alive as long as function
    addresses from it are used. ``object_cache`` is an optional
    ``(notify(module, buffer), getbuffer(module) -> bytes|None)`` pair.
    """
    tm = host_target_machine()
    with _lock:
        mod = llvm.parse_assembly(llvm_ir)
        check_externals(mod)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        optimize(mod, tm)
        engine = llvm.create_mcjit_compiler(mod, tm)
        if object_cache is not None:
            engine.set_object_cache(*object_cache)
        engine.finalize_object()
    return engine, mod


def check_externals(mod) -> None:
    """Refuse code that calls a function this process cannot provide.

    MCJIT resolves an unknown external to address 0, so the first call would
    crash the Python process; raise a clear error instead.
    """
    import ctypes
    process = ctypes.CDLL(None)  # libc and libm are already in the process
    missing = []
    for f in mod.functions:
        if not f.is_declaration or f.name.startswith("llvm.") or llvm.address_of_symbol(f.name):
            continue
        try:
            llvm.add_symbol(f.name, ctypes.cast(getattr(process, f.name), ctypes.c_void_p).value)
        except AttributeError:
            missing.append(f.name)
    if missing:
        raise RuntimeError(
            "generated code calls functions that are not available in this process: "
            + ", ".join(sorted(missing)))

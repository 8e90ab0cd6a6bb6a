"""LLVM code generation with llvmlite: LLVM IR text -> optimised native code.

Why llvmlite rather than MLIR's ExecutionEngine: one LLVM (22.1, like the
MLIR bindings) serves both targets — host object code here and PTX for
``nvptx64`` — and its MCJIT object cache lets compiled code be kept on disk.
"""

import ctypes
import os
import re
import threading
from functools import lru_cache
from typing import List, Sequence

import llvmlite.binding as llvm

_lock = threading.Lock()


# The cap on the size of the thread teams compiled code starts
# (passes/parallel_calls.py reads it at each team call): unlimited, but 1
# in a child process after fork(), where libgomp's threads no longer exist
# and starting a team would hang (libgomp is not fork-safe).
TEAM_LIMIT_SYMBOL = "__ferrule_team_limit"
_team_limit = ctypes.c_int32(1 << 30)


def _single_threaded_after_fork():
    _team_limit.value = 1


@lru_cache(maxsize=1)
def _init_native():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.add_symbol(TEAM_LIMIT_SYMBOL, ctypes.addressof(_team_limit))
    os.register_at_fork(after_in_child=_single_threaded_after_fork)
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


@lru_cache(maxsize=1)
def host_narrow_conversions() -> str:
    """The narrow-float conversions the ``expand-narrow-floats`` pass writes
    out on this CPU: ``"bf16"``, and ``"f16,bf16"`` without F16C (LLVM would
    call library functions there, which the JIT cannot find).

    float16 with F16C is left to LLVM: its instructions give numpy's bits
    (but for signalling NaNs, which they quiet) and are faster. bfloat16 is
    always written out: AVX512-BF16's conversion flushes subnormals to zero
    (1590 of tests/test_narrow_dtypes.py's float32 sweep came out 0 instead
    of numpy's subnormal bfloat16), and the written-out code is a few
    shifts and adds."""
    features = llvm.get_host_cpu_features()
    return "bf16" if features.get("f16c") else "f16,bf16"


def optimize(module: "llvm.ModuleRef", tm, speed_level: int = 3) -> None:
    """Run LLVM's O-level pipeline (with loop and SLP vectorisation)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


# Above this many lines of LLVM IR a module is optimised at O2, not O3.
# Measured on the char-LSTM training step (9,100 lines): O2 takes 1.55 s of
# CPU where O3 takes 2.5 s (optimisation and code generation: O3's extra
# unrolling and vectorisation make 40% more code), and the step runs 3%
# slower (63.5 ms against 61.1). Small functions (a fused cell, a matmul)
# keep O3, which costs them little.
O3_MAX_LINES = 4000


def opt_level(llvm_ir: str) -> int:
    """The LLVM optimisation level for ``llvm_ir``: 3, or 2 for large modules
    (:data:`O3_MAX_LINES`)."""
    return 3 if llvm_ir.count("\n") <= O3_MAX_LINES else 2


def jit_llvm_ir(llvm_ir: str, object_cache=None, link=None):
    """Parse, optimise and compile ``llvm_ir`` for the host; load the object.

    Returns ``(engine, None)``; keep the engine alive as long as function
    addresses from it are used. The LLVM module is freed once compiled (an
    MCJIT engine would keep it, ~1 MB per function): the engine holds only
    the object code. ``object_cache`` is an optional
    ``(notify(module, buffer), getbuffer(module) -> bytes|None)`` pair;
    ``notify`` receives the object code. ``link(module, context)``, if
    given, adds to the parsed module before it is checked and optimised
    (the allocation guard, oom.py).
    """
    tm = host_target_machine()
    with _lock:
        # A context of its own, freed after: in llvmlite's global one every
        # constant and type of every function compiled would stay forever.
        ctx = llvm.create_context()
        try:
            mod = llvm.parse_assembly(llvm_ir, context=ctx)
            if link is not None:
                link(mod, ctx)
            check_externals(mod)
            mod.triple = tm.triple
            mod.data_layout = str(tm.target_data)
            mod.verify()
            optimize(mod, tm, opt_level(llvm_ir))
            obj = tm.emit_object(mod)
            mod.close()
        finally:
            ctx.close()
    if object_cache is not None:
        object_cache[0](None, obj)
    return load_object(obj, ()), None


_DECLARE = re.compile(r"^declare [^@]*@\"?([\w.$]+)\"?\(", re.M)


def externals_of(llvm_ir: str) -> List[str]:
    """The functions ``llvm_ir`` declares (and so calls from outside)."""
    return sorted({n for n in _DECLARE.findall(llvm_ir) if not n.startswith("llvm.")})


def load_object(obj: bytes, externals: Sequence[str]):
    """An engine holding already compiled object code (from the disk cache):
    no parsing, no optimisation, no code generation. ``externals``: the
    functions it calls from this process (:func:`externals_of`)."""
    tm = host_target_machine()
    with _lock:
        _resolve(externals)
        mod = llvm.parse_assembly("")
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        engine = llvm.create_mcjit_compiler(mod, tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
    return engine


# What code with team functions (passes/parallel_calls.py) calls: GCC's
# OpenMP runtime, loaded into the process on first need.
OPENMP_LIBRARY = "libgomp.so.1"
OPENMP_SYMBOLS = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


# How long a team's idle threads spin for the next team call before they
# sleep, unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT (libgomp's
# own default spins 300,000 times, "active" for ever, "passive" not at
# all). Measured on 2 free cores (bench/matmul_teams.py,
# docs/performance.md): sleeping at once makes every team call wait for a
# thread to wake (32x256x1024 matmul: no gain; char-LSTM step: none),
# this spin brings both to 1.5-1.8x. On cores other processes want,
# spinning costs (each team call waits for a descheduled thread): there
# set FERRULE_NUM_THREADS=1, as for any OpenMP program.
TEAM_SPIN_COUNT = "30000"
_openmp = []        # the ctypes handle that keeps libgomp loaded


@lru_cache(maxsize=1)
def openmp_runtime() -> bool:
    """Load libgomp into the process (once) and give its functions to the
    JIT; False where it is not installed (compiled code then runs its
    matmuls on the calling thread). libgomp reads its settings from the
    environment when it loads: unless ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` is set, ``GOMP_SPINCOUNT`` is
    :data:`TEAM_SPIN_COUNT` for that moment (the process's environment is
    left as it was).

    Loaded with ctypes, which never unloads a library, and not with
    LLVM's ``load_library_permanently``: LLVM unloads those when the
    process exits, while the team's threads may still be spinning in
    libgomp's code (a crash at exit)."""
    with _openmp_lock:      # one thread sets and restores the environment
        ours = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
        if ours:
            os.environ["GOMP_SPINCOUNT"] = TEAM_SPIN_COUNT
        try:
            lib = ctypes.CDLL(OPENMP_LIBRARY, mode=ctypes.RTLD_GLOBAL)
            addresses = {n: ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
                         for n in OPENMP_SYMBOLS}
        except (OSError, AttributeError):
            return False
        finally:
            if ours:
                os.environ.pop("GOMP_SPINCOUNT", None)
        _openmp.append(lib)
        for name, address in addresses.items():
            llvm.add_symbol(name, address)
        return True


_openmp_lock = threading.Lock()


def _resolve(names: Sequence[str]) -> None:
    if any(n in OPENMP_SYMBOLS for n in names):
        openmp_runtime()
    process = ctypes.CDLL(None)
    missing = []
    for name in names:
        if llvm.address_of_symbol(name):
            continue
        try:
            llvm.add_symbol(name, ctypes.cast(getattr(process, name), ctypes.c_void_p).value)
        except AttributeError:
            missing.append(name)
    if missing:
        raise RuntimeError(
            "generated code calls functions that are not available in this process: "
            + ", ".join(sorted(missing)))


def check_externals(mod) -> None:
    """Refuse code that calls a function this process cannot provide.

    MCJIT resolves an unknown external to address 0, so the first call would
    crash the Python process; raise a clear error instead.
    """
    _resolve([f.name for f in mod.functions
              if f.is_declaration and not f.name.startswith("llvm.")])

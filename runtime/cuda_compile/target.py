"""NVIDIA target handling: option validation, LLVM IR -> PTX, PTX -> cubin.

Why validate here: LLVM's NVPTX backend *aborts the process* (no exception)
on an unknown ``sm_XX`` or on a PTX ISA version too old for the chip, so
every option is checked against the tables below before llvmlite sees it.
The tables were measured with this LLVM (22.1): for each processor, the
oldest ``+ptxNN`` feature with which ``llc`` compiles a kernel.

PTX is produced by llvmlite's NVPTX target (the same LLVM 22.1 as the MLIR
bindings) rather than MLIR's ``gpu-module-to-binary``: it needs no
``nvvm-attach-target`` plumbing, lets us link libdevice and internalise it
ourselves, and the checked options never reach an aborting code path.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

TRIPLE = "nvptx64-nvidia-cuda"

# Oldest PTX ISA version (times ten) LLVM 22.1 accepts for each processor.
SM_MIN_PTX = {
    "sm_20": 32, "sm_21": 32, "sm_30": 32, "sm_32": 40, "sm_35": 32,
    "sm_37": 41, "sm_50": 40, "sm_52": 41, "sm_53": 42, "sm_60": 50,
    "sm_61": 50, "sm_62": 50, "sm_70": 60, "sm_72": 61, "sm_75": 63,
    "sm_80": 70, "sm_86": 71, "sm_87": 74, "sm_88": 90, "sm_89": 78,
    "sm_90": 78, "sm_90a": 80, "sm_100": 86, "sm_100a": 86, "sm_100f": 88,
    "sm_101": 86, "sm_101a": 86, "sm_101f": 88, "sm_103": 88,
    "sm_103a": 88, "sm_103f": 88, "sm_110": 90, "sm_110a": 90,
    "sm_110f": 90, "sm_120": 87, "sm_120a": 87, "sm_120f": 88,
    "sm_121": 88, "sm_121a": 88, "sm_121f": 88,
}
# PTX ISA versions LLVM 22.1 knows (``+ptxNN`` features).
KNOWN_PTX = (32, 40, 41, 42, 43, 50, 60, 61, 62, 63, 64, 65, 70, 71, 72, 73,
             74, 75, 76, 77, 78, 80, 81, 82, 83, 84, 85, 86, 87, 88, 90)
# Default: PTX 8.0 (CUDA 12.0 drivers JIT it) unless the chip needs newer.
DEFAULT_PTX = 80


@dataclass(frozen=True)
class CudaTarget:
    """A validated target: processor (``sm_90``) and PTX ISA version (80)."""
    sm: str
    ptx: int

    @property
    def features(self) -> str:
        return f"+ptx{self.ptx}"

    @property
    def ptx_version(self) -> str:
        return f"{self.ptx // 10}.{self.ptx % 10}"

    @property
    def compute_capability(self) -> int:
        """The processor's number: 90 for ``sm_90`` and ``sm_90a``."""
        return _sm_key(self.sm)[0]


def parse_target(target: str, ptx_version=None) -> CudaTarget:
    """Validate ``target`` (``"sm_90"``, ``"cuda:sm_90"``, ``"cuda"``) and an
    optional PTX ISA version (``80``, ``"8.0"``, ``"ptx80"``).

    Raises ``ValueError`` for an unknown processor, an unknown PTX version or
    one too old for the processor — the cases where LLVM would abort.
    """
    if not isinstance(target, str):
        raise ValueError(f"CUDA target must be a string like 'sm_90', got {target!r}")
    t = target.strip().lower()
    if t.startswith("cuda"):
        t = t[4:].lstrip(":")
    sm = t or "sm_90"
    if re.fullmatch(r"\d+[a-z]?", sm):
        sm = "sm_" + sm
    if sm not in SM_MIN_PTX:
        raise ValueError(
            f"unknown CUDA processor {target!r}; LLVM 22.1 knows: "
            + ", ".join(sorted(SM_MIN_PTX, key=_sm_key)))
    need = SM_MIN_PTX[sm]
    if ptx_version is None:
        ptx = max(need, DEFAULT_PTX)
    else:
        ptx = _parse_ptx(ptx_version)
        if ptx < need:
            raise ValueError(
                f"PTX ISA {ptx // 10}.{ptx % 10} is too old for {sm}: it needs "
                f"PTX {need // 10}.{need % 10} or newer (LLVM would abort)")
    return CudaTarget(sm, ptx)


def _sm_key(sm: str):
    m = re.fullmatch(r"sm_(\d+)([a-z]?)", sm)
    return (int(m.group(1)), m.group(2))


def _parse_ptx(v) -> int:
    s = str(v).strip().lower()
    if s.startswith("+"):
        s = s[1:]
    if s.startswith("ptx"):
        s = s[3:]
    m = re.fullmatch(r"(\d)\.(\d)", s)
    n = int(m.group(1)) * 10 + int(m.group(2)) if m else (int(s) if s.isdigit() else -1)
    if n not in KNOWN_PTX:
        raise ValueError(
            f"unknown PTX ISA version {v!r}; LLVM 22.1 knows "
            + ", ".join(f"{p // 10}.{p % 10}" for p in KNOWN_PTX))
    return n


# ---------------------------------------------------------------- libdevice

def find_libdevice() -> Optional[Path]:
    """libdevice.10.bc from $FERRULE_LIBDEVICE, $CUDA_HOME/$CUDA_PATH, next
    to ``ptxas`` on PATH, or /usr/local/cuda; None when absent."""
    cands: List[Path] = []
    if os.environ.get("FERRULE_LIBDEVICE"):
        cands.append(Path(os.environ["FERRULE_LIBDEVICE"]))
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands.append(Path(os.environ[var]) / "nvvm/libdevice/libdevice.10.bc")
    ptxas = shutil.which("ptxas")
    if ptxas:
        real = Path(ptxas).resolve()
        cands.append(real.parent.parent / "nvvm/libdevice/libdevice.10.bc")
    cands.append(Path("/usr/local/cuda/nvvm/libdevice/libdevice.10.bc"))
    for c in cands:
        if c.is_file():
            return c
    return None


# ---------------------------------------------------------------- LLVM -> PTX

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _init_nvptx():
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return True


def _target_machine(target: CudaTarget):
    import llvmlite.binding as llvm
    _init_nvptx()
    # Safe: target.sm and target.features passed parse_target's checks.
    return llvm.Target.from_triple(TRIPLE).create_target_machine(
        cpu=target.sm, features=target.features, opt=3)


def llvm_ir_to_ptx(llvm_irs: Iterable[str], kernels: Iterable[str],
                   target: CudaTarget) -> Tuple[str, str]:
    """Link the kernel modules (and libdevice if they call ``__nv_*``),
    optimise at O3, and emit PTX. Returns ``(ptx, optimised LLVM IR)``.

    Everything except ``kernels`` is internalised, so unused libdevice
    functions disappear and helpers are inlined into the entry points.
    (Fast-math choices are made before, on the MLIR: :mod:`.fast_math`.)
    """
    import llvmlite.binding as llvm
    kernels = set(kernels)
    with _lock:
        tm = _target_machine(target)
        layout = str(tm.target_data)
        mod = None
        for text in llvm_irs:
            m = llvm.parse_assembly(text)
            m.triple, m.data_layout = TRIPLE, layout
            if mod is None:
                mod = m
            else:
                mod.link_in(m)
        if mod is None:
            raise ValueError("no GPU kernels to compile")
        needs = sorted(f.name for f in mod.functions
                       if f.is_declaration and f.name.startswith("__nv_"))
        if needs:
            path = find_libdevice()
            if path is None:
                raise RuntimeError(
                    "the kernels call libdevice math functions ("
                    + ", ".join(needs[:5]) + ") but libdevice.10.bc was not "
                    "found; install the CUDA toolkit or set FERRULE_LIBDEVICE")
            lib = llvm.parse_bitcode(path.read_bytes())
            lib.triple, lib.data_layout = TRIPLE, layout
            mod.link_in(lib)
        for f in mod.functions:
            if not f.is_declaration and f.name not in kernels:
                f.linkage = "internal"
        for g in mod.global_variables:
            if not g.is_declaration:
                g.linkage = "internal"
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        opt_ir = str(mod)
        if "__nvvm_reflect" in opt_ir:
            raise RuntimeError("NVVMReflect did not run: __nvvm_reflect is left "
                               "in the optimised module")
        ptx = tm.emit_assembly(mod)
    return ptx, opt_ir


# ---------------------------------------------------------------- ptxas

@dataclass
class PtxasResult:
    """A cubin (or None) and ptxas's ``-v`` report (or why there is none)."""
    cubin: Optional[bytes]
    log: str

    def spills(self) -> List[Tuple[int, int]]:
        """(spill stores, spill loads) bytes for each function in the log."""
        return [(int(a), int(b)) for a, b in re.findall(
            r"(\d+) bytes spill stores, (\d+) bytes spill loads", self.log)]

    def registers(self) -> List[int]:
        return [int(n) for n in re.findall(r"Used (\d+) registers", self.log)]


def ptxas_available() -> bool:
    return shutil.which("ptxas") is not None


def assemble(ptx: str, target: CudaTarget, timeout: float = 120.0) -> PtxasResult:
    """Run ``ptxas -v`` on ``ptx`` for ``target``; cubin None when ptxas is
    missing or rejects the target (its message is kept in ``log``)."""
    exe = shutil.which("ptxas")
    if exe is None:
        return PtxasResult(None, "ptxas not found on PATH: no cubin; the "
                                 "driver will JIT the PTX")
    with tempfile.TemporaryDirectory(prefix="ferrule-ptxas-") as d:
        src, out = Path(d) / "k.ptx", Path(d) / "k.cubin"
        src.write_text(ptx)
        proc = subprocess.run([exe, "-v", f"-arch={target.sm}", "-O3",
                               str(src), "-o", str(out)],
                              capture_output=True, text=True, timeout=timeout)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0 or not out.exists():
            return PtxasResult(None, f"ptxas failed ({proc.returncode}):\n{log}")
        return PtxasResult(out.read_bytes(), log)

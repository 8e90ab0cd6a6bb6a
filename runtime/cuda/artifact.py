"""The ferrule CUDA artifact: one JSON file holding a compiled GPU function.

Standard library only (no numpy, MLIR or LLVM), so it loads anywhere.

Layout (``FORMAT``, version ``VERSION``)::

    {"format": "ferrule-cuda-artifact", "version": 2,
     "function": "lstm",                      # the compiled func's name
     "target": {"sm": "sm_90", "ptx_version": "8.0"},
     "fast_math": false,
     "ptx": "<PTX text: one module with an .entry per kernel>",
     "cubin": "<base64 of ptxas output for target.sm>" | null,
     "kernels": {"lstm_k0": {"kind": "parallel", "elements": 262144,
                             "grid": [1024, 1, 1], "block": [256, 1, 1],
                             "grid_stride": true, "registers": 24, ...}},
     "plan": {"inputs": [...], "outputs": [...], "constants": [...],
              "steps": [...]}}                # see below

``plan`` is the host call sequence (documented in
``ferrule.runtime.cuda_compile.hostplan``): input/output shapes and dtypes,
constant buffers (base64), and steps ``alloc`` / ``launch`` / ``free``.
A launch names its kernel, its grid and block (use them as recorded: the
grid is compiled into the kernel's index ranges) and its arguments
(``input``/``output``/``temp``/``const`` buffers by index, or scalars).
"""

import base64
import json
import os
from pathlib import Path
from typing import Optional

FORMAT = "ferrule-cuda-artifact"
VERSION = 2   # 2: constants may be splats
_STEP_OPS = {"alloc", "launch", "free"}
_ARG_KINDS = {"input", "output", "temp", "const", "scalar"}


class ArtifactError(ValueError):
    """The file is not a valid ferrule CUDA artifact."""


def make(*, function: str, sm: str, ptx_version: str, fast_math: bool,
         ptx: str, cubin: Optional[bytes], kernels: dict, plan: dict) -> dict:
    """Build (and validate) the artifact dict."""
    art = {
        "format": FORMAT, "version": VERSION, "function": function,
        "target": {"sm": sm, "ptx_version": ptx_version},
        "fast_math": bool(fast_math), "ptx": ptx,
        "cubin": base64.b64encode(cubin).decode("ascii") if cubin else None,
        "kernels": kernels, "plan": plan,
    }
    validate(art)
    return art


def save(art: dict, path) -> None:
    """Write ``art`` to ``path`` atomically (temp file + rename)."""
    validate(art)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(art, indent=1))
    os.replace(tmp, path)


def load(path) -> dict:
    """Read and validate an artifact file."""
    try:
        art = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: cannot read a ferrule CUDA artifact: {e}") from e
    validate(art, str(path))
    return art


def cubin_bytes(art: dict) -> Optional[bytes]:
    return base64.b64decode(art["cubin"]) if art.get("cubin") else None


def constant_bytes(art: dict, index: int) -> bytes:
    """The bytes of constant buffer ``index`` (a splat entry expanded)."""
    c = art["plan"]["constants"][index]
    if "splat" in c:
        one = base64.b64decode(c["splat"])
        return one * (c["nbytes"] // len(one))
    return base64.b64decode(c["data"])


def validate(art: dict, where: str = "artifact") -> None:
    """Check structure and cross-references; raise :class:`ArtifactError`."""
    def bad(msg):
        raise ArtifactError(f"{where}: {msg}")

    if not isinstance(art, dict) or art.get("format") != FORMAT:
        bad(f"not a {FORMAT} file")
    if art.get("version") != VERSION:
        bad(f"artifact version {art.get('version')!r}; this launcher reads {VERSION}")
    for key in ("function", "target", "ptx", "kernels", "plan"):
        if key not in art:
            bad(f"missing {key!r}")
    if ".entry" not in art["ptx"] and not art.get("cubin"):
        bad("no PTX entry points and no cubin")
    plan = art["plan"]
    for key in ("inputs", "outputs", "constants", "steps"):
        if key not in plan:
            bad(f"plan: missing {key!r}")
    for spec in plan["inputs"] + plan["outputs"]:
        if not isinstance(spec.get("shape"), list) or not isinstance(spec.get("dtype"), str):
            bad(f"plan: bad tensor spec {spec!r}")
    for c in plan["constants"]:
        if not isinstance(c.get("nbytes"), int) or ("data" in c) == ("splat" in c):
            bad(f"plan: bad constant {str(c)[:80]!r} (needs nbytes and one of data, splat)")
    n_temps = 0
    counts = {"input": len(plan["inputs"]), "output": len(plan["outputs"]),
              "const": len(plan["constants"])}
    for step in plan["steps"]:
        op = step.get("op")
        if op not in _STEP_OPS:
            bad(f"plan: unknown step {op!r}")
        if op == "alloc":
            n_temps = max(n_temps, step["temp"] + 1)
        elif op == "launch":
            if step["kernel"] not in art["kernels"]:
                bad(f"plan launches unknown kernel {step['kernel']!r}")
            if len(step["grid"]) != 3 or len(step["block"]) != 3:
                bad(f"launch of {step['kernel']}: grid/block must have 3 entries")
            for a in step["args"]:
                kind = a.get("kind")
                if kind not in _ARG_KINDS:
                    bad(f"launch of {step['kernel']}: unknown argument kind {kind!r}")
                if kind == "scalar":
                    if a.get("type") not in ("f32", "f64", "i32", "i64"):
                        bad(f"launch of {step['kernel']}: scalar type {a.get('type')!r}")
                elif kind == "temp":
                    if a["index"] >= n_temps:
                        bad(f"launch of {step['kernel']}: temp {a['index']} used before alloc")
                elif not 0 <= a["index"] < counts[kind]:
                    bad(f"launch of {step['kernel']}: {kind} {a['index']} out of range")

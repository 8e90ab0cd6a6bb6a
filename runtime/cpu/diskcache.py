"""The warm disk cache: a fresh process skips AD, lowering and LLVM.

Object code is cached on disk by the hash of its LLVM IR
(:class:`~.function.CpuFunction`), which still needs the AD passes, the
lowering and LLVM IR to compute. This cache sits in front of all of that:
:func:`key` hashes what determines the compiled code —

* the traced module's text (the program, its shapes and dtypes, constants
  and source locations),
* the function's name, the pullback strategy and the resolved
  :class:`~.options.CpuOptions` (threads, vector width, split thresholds),
* the host CPU's name and features,
* the compiler itself: ferrule's version and a fingerprint of the sources
  that turn traced IR into code (``dialect/``, ``passes/``, ``runtime/``),
  llvmlite's version and the MLIR bindings' —

and :func:`store` records, under that key, what a call needs besides the
object code: the signature, the object keys and external symbols of the
function (or of each row chunk), the row-split plan and the threads note.
:func:`load` rebuilds the callable from that record and the cached objects
(``ExecutionEngine.add_object_file``): no MLIR, no LLVM pass runs. A record
whose objects are missing, or that does not parse, is a miss.

A second, cheaper key finds the same record without tracing:
:func:`store_source` maps a *source key* (``ferrule/source_key.py``: the
function's bytecode, closure and globals, the arguments' signature, the
compiler) to the traced key, with what the frontend needs of the trace;
:func:`load_source` follows it. A warm first call then neither traces nor
touches MLIR.

Records are JSON files ``<key>.json`` (and ``<source key>.src.json``) beside the objects, in
``FERRULE_CACHE_DIR`` (default ``~/.cache/ferrule``; empty: no disk cache).
"""

import hashlib
import json
import os
from functools import lru_cache

from ..signature import Signature, TensorSpec, dtype_name, dtype_of_name
from . import callbacks
from .function import CpuFunction, RowSplitFunction, _cache_dir

FORMAT = 1


@lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """A hash of everything besides the traced IR that shapes the code: the
    sources that compile it (by path, size and modification time: cheap
    enough for every process start), llvmlite's and MLIR's libraries, the
    host CPU."""
    import llvmlite
    import llvmlite.binding as llvm
    from mlir import _mlir_libs
    h = hashlib.sha256(f"ferrule-cpu-{FORMAT}-{llvmlite.__version__}".encode())
    h.update((llvm.get_host_cpu_name() + llvm.get_host_cpu_features().flatten()).encode())
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    entries = []
    for sub in ("dialect", "passes", "runtime"):
        for dirpath, _, names in os.walk(os.path.join(root, sub)):
            entries += [os.path.join(dirpath, n) for n in names if n.endswith((".py", ".mlir"))]
    libs = os.path.dirname(_mlir_libs.__file__)
    entries += [os.path.join(libs, n) for n in os.listdir(libs) if ".so" in n]
    update_with_files(h, entries)
    return h.hexdigest()


def update_with_files(h, paths) -> None:
    """Add each file of ``paths`` to hash ``h`` by path, size and
    modification time (a file that vanished is skipped)."""
    for path in sorted(paths):
        try:
            st = os.stat(path)
        except OSError:
            continue
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())


def key(traced: str, func_name: str, pullback: str, options) -> str:
    """The cache key of one specialisation compiled with resolved ``options``."""
    h = hashlib.sha256(compiler_fingerprint().encode())
    for part in (func_name, pullback, repr(options), traced):
        h.update(b"\0" + part.encode())
    return h.hexdigest()


def _specs(specs):
    return [[list(s.shape), dtype_name(s.dtype)] for s in specs]


def _unspecs(rows):
    return tuple(TensorSpec(tuple(shape), dtype_of_name(dt)) for shape, dt in rows)


def _fn_record(fn: CpuFunction) -> dict:
    return {"object": fn.object_key, "externals": list(fn.externals),
            "inputs": _specs(fn.inputs), "outputs": _specs(fn.outputs)}


def store(k: str, fn) -> None:
    """Record ``fn`` (a :class:`CpuFunction` or :class:`RowSplitFunction`
    just compiled) under key ``k``; silently nothing without a cache dir."""
    d = _cache_dir()
    if d is None:
        return
    rec = {"format": FORMAT, "func_name": fn.func_name, "threads_note": fn.threads_note,
           "inputs": _specs(fn.inputs), "outputs": _specs(fn.outputs)}
    if isinstance(fn, RowSplitFunction):
        plan = dict(fn.plan)
        plan["results"] = [list(lay) if isinstance(lay, tuple) else lay
                           for lay in plan["results"]]
        rec["plan"] = plan
        rec["chunks"] = [[lo, hi, _fn_record(c)] for lo, hi, c in fn.chunks]
    else:
        rec["function"] = _fn_record(fn)
    path = d / f"{k}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, path)
    except OSError:
        pass


def _load_fn(rec: dict, func_name: str) -> CpuFunction:
    return CpuFunction(None, func_name, _unspecs(rec["inputs"]), _unspecs(rec["outputs"]),
                       object_key=rec["object"], externals=rec["externals"])


def load(k: str, func_name: str):
    """The callable recorded under ``k``, or None (a miss)."""
    d = _cache_dir()
    if d is None:
        return None
    try:
        rec = json.loads((d / f"{k}.json").read_text())
        if rec.get("format") != FORMAT or rec["func_name"] != func_name:
            return None
        if "chunks" in rec:
            plan = dict(rec["plan"])
            plan["results"] = [tuple(lay) if isinstance(lay, list) else lay
                               for lay in plan["results"]]
            sig = Signature(func_name, _unspecs(rec["inputs"]), _unspecs(rec["outputs"]))
            chunks = [(lo, hi, _load_fn(c, func_name)) for lo, hi, c in rec["chunks"]]
            fn = RowSplitFunction(sig, chunks, plan)
        else:
            fn = _load_fn(rec["function"], func_name)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from .compile import keep_freed_pages
    keep_freed_pages()
    fn.threads_note = rec["threads_note"]
    fn.stages = None          # lowered again only if asked for (Lowered.as_text)
    fn.from_warm_cache = True
    return fn


def store_source(source_key: str, k: str, meta: dict) -> None:
    """Record that the program whose source key (``ferrule.source_key``: a
    hash of the function's code and the values it reads, computed without
    tracing) is ``source_key`` is the one stored under key ``k``, with
    ``meta`` (JSON data: what the frontend needs of the trace — the results'
    structure and dtypes). Silently nothing without a cache dir."""
    d = _cache_dir()
    if d is None:
        return
    path = d / f"{source_key}.src.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"format": FORMAT, "key": k, "meta": meta}))
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass


def load_source(source_key: str):
    """``(callable, meta)`` recorded under ``source_key`` by
    :func:`store_source` (the callable as :func:`load` rebuilds it), or
    None (a miss: no record, or its program's objects are gone)."""
    d = _cache_dir()
    if d is None:
        return None
    try:
        rec = json.loads((d / f"{source_key}.src.json").read_text())
        if rec.get("format") != FORMAT:
            return None
        meta, k = rec["meta"], rec["key"]
        # Host callbacks are numbered per process, by its traces: code that
        # calls one is never loaded untraced (store_source's callers do not
        # record it; this checks again).
        if callbacks.PREFIX in (d / f"{k}.json").read_text():
            return None
        fn = load(k, meta["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if fn is None else (fn, meta)


def enabled() -> bool:
    return _cache_dir() is not None


__all__ = ["key", "store", "load", "store_source", "load_source", "enabled",
           "compiler_fingerprint"]

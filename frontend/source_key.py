"""A cache key computed from a function's code and the values it reads, without tracing.

The warm disk cache (``runtime/cpu/diskcache.py``) is keyed by the traced
IR: a fresh process must trace (and so import and drive the MLIR bindings)
before it can find its object code. :func:`source_key` is a second key, for
the same entry, that needs no trace: a hash of everything a trace depends
on, so that equal keys mean equal traced programs.

Contract: :func:`source_key` returns a hex digest, or None when it cannot
vouch for the function — then the caller traces (the traced key is always
right). It hashes

* the function's bytecode with its constants, names, file and line table
  (``marshal``: an edited source, even a moved line, changes it), its
  defaults and its closure cells' values;
* every global the code (or its nested code) names, by value: numbers,
  strings, numpy arrays (bytes), tuples/lists/dicts of them, functions
  (recursively, the same way), ferrule's and numpy's modules, functions
  and types (by name: their code is in the compiler fingerprint);
* the arguments' signature (shapes, dtypes, static values), the pullback
  strategy, the CPU options, and the compiler: ferrule's frontend sources
  (which trace), numpy's and Python's versions, and
  :func:`~ferrule.runtime.cpu.diskcache.compiler_fingerprint`.

Anything else — an instance of a user class, a user module (its functions
could change unseen), an object whose ``repr`` carries an address — makes it
give up (None). Why not more: a stale hit would run code compiled for a
different program, silently; a missed one only costs a trace.

Assumed, as for ``jit`` in one process: tracing is deterministic given
these (a function that draws ``np.random`` values while traced bakes the
first process's draw in, as it bakes the first trace's in memory).
"""

import hashlib
import marshal
import os
import sys
import types
from functools import lru_cache, partial
from typing import Optional

import numpy as np

# Packages whose functions, types and modules are hashed by name: their code
# is versioned (numpy, Python's standard library) or fingerprinted (ferrule).
_LIBRARIES = ("ferrule", "numpy", "math", "builtins", "functools", "operator", "itertools",
              "cmath", "_operator", "_functools")
_SCALARS = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis), slice, range)


class _GiveUp(Exception):
    """The function reads something this key cannot vouch for."""


@lru_cache(maxsize=1)
def frontend_fingerprint() -> str:
    """ferrule's tracing sources (this package's folder: path, size, mtime),
    numpy's and Python's versions, and the compiler's fingerprint."""
    from .runtime.cpu.diskcache import compiler_fingerprint, update_with_files
    h = hashlib.sha256(f"{compiler_fingerprint()}|{np.__version__}|{sys.version}".encode())
    root = os.path.dirname(os.path.abspath(__file__))
    entries = []
    for dirpath, _, names in os.walk(root):
        entries += [os.path.join(dirpath, n) for n in names if n.endswith(".py")]
    update_with_files(h, entries)
    return h.hexdigest()


def _library(module_name: Optional[str]) -> bool:
    return bool(module_name) and module_name.split(".")[0] in _LIBRARIES


def _code_names(code: types.CodeType, out: set) -> set:
    """Names read by ``code`` and the code objects nested in it."""
    out.update(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code_names(c, out)
    return out


class _Hasher:
    def __init__(self):
        self.h = hashlib.sha256()
        # id -> (position, the object): cycles and shared objects. The
        # object is held so that its id is not reused by a later temporary.
        self.seen = {}

    def put(self, *parts) -> None:
        for p in parts:
            self.h.update(p if isinstance(p, bytes) else str(p).encode())
            self.h.update(b"\0")

    def obj(self, x) -> None:
        if isinstance(x, _SCALARS):
            self.put(type(x).__name__, repr(x))
            return
        if id(x) in self.seen:
            self.put("ref", self.seen[id(x)][0])
            return
        self.seen[id(x)] = (len(self.seen), x)
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise _GiveUp("object array")
            self.put("ndarray", x.dtype.str, x.shape, hashlib.sha256(
                np.ascontiguousarray(x).tobytes()).hexdigest())
        elif isinstance(x, (np.generic, np.dtype)):
            self.put(type(x).__name__, repr(x))
        elif isinstance(x, (tuple, list)):
            self.put(type(x).__name__, len(x))
            for v in x:
                self.obj(v)
        elif type(x) is dict:
            self.put("dict", len(x))
            for k, v in x.items():
                self.obj(k)
                self.obj(v)
        elif isinstance(x, types.FunctionType):
            self.function(x)
        elif isinstance(x, partial):
            self.put("partial")
            self.obj(x.func)
            self.obj(x.args)
            self.obj(dict(x.keywords))
        elif isinstance(x, types.ModuleType):
            if not _library(x.__name__):
                raise _GiveUp(f"module {x.__name__}")
            self.put("module", x.__name__)
        elif isinstance(x, (type, types.BuiltinFunctionType, np.ufunc)):
            mod = getattr(x, "__module__", None) or ("numpy" if isinstance(x, np.ufunc) else None)
            if not _library(mod):
                raise _GiveUp(f"{x!r}")
            self.put("named", mod, getattr(x, "__qualname__", x.__name__))
        elif type(x).__name__ == "Jitted" and _library(type(x).__module__):
            self.put("jitted", x.static_argnums, x.pullback, x.target)
            self.obj(x.fun)
        else:
            raise _GiveUp(f"a {type(x).__name__}")

    def function(self, f: types.FunctionType) -> None:
        # Where the code was defined, not __module__/__qualname__, which
        # functools.wraps copies from the function wrapped (value_and_grad).
        module = f.__globals__.get("__name__")
        code = f.__code__
        self.put("function", module, getattr(code, "co_qualname", code.co_name))
        self.obj(f.__defaults__)
        self.obj(dict(f.__kwdefaults__ or {}))
        for cell in f.__closure__ or ():
            try:
                self.obj(cell.cell_contents)
            except ValueError:          # an empty cell (a name not bound yet)
                self.put("empty cell")
        if _library(module):
            return                      # its code: in the fingerprint
        self.put(marshal.dumps(code))
        g = f.__globals__
        for name in sorted(_code_names(code, set())):
            if name in g:
                self.put("global", name)
                self.obj(g[name])


def encode_struct(struct):
    """A pytree structure (:func:`ferrule.pytree.flatten`'s) as JSON data, for
    the disk cache's record of a specialisation's results; raises
    ``ValueError`` for nodes other than tuples, lists, dicts with string
    keys, None and float0 arrays (their types could not be found again)."""
    from .pytree import _NONE
    if struct is None:
        return None
    if struct is _NONE:
        return "none"
    kind, aux, children = struct
    kids = [[n, encode_struct(c)] for n, c in children]
    if kind in (tuple, list) and aux is None:
        return [kind.__name__, None, kids]
    if kind == "dict" and all(type(k) is str for k in aux):
        return ["dict", list(aux), kids]
    if kind == "float0":
        return ["float0", list(aux), kids]
    raise ValueError(f"cannot record a {kind!r} node")


def decode_struct(data):
    """The inverse of :func:`encode_struct`."""
    from .pytree import _NONE
    if data is None:
        return None
    if data == "none":
        return _NONE
    kind, aux, kids = data
    children = tuple((n, decode_struct(c)) for n, c in kids)
    if kind in ("tuple", "list"):
        return ({"tuple": tuple, "list": list}[kind], None, children)
    return (kind, tuple(aux), children)


def _plain(v) -> bool:
    """A value whose repr says all of it: None, bool, int, float, str,
    bytes, and tuples of them."""
    if isinstance(v, tuple):
        return all(_plain(x) for x in v)
    return type(v) in (bool, int, float, str, bytes, type(None))


def _plain_struct(text: str) -> bool:
    """The repr of an argument structure names no classes but tuple and list."""
    for cls in ("<class 'tuple'>", "<class 'list'>"):
        text = text.replace(cls, "")
    return "<class" not in text and " at 0x" not in text


def source_key(fun, arg_key, pullback: str, static_argnums, options) -> Optional[str]:
    """The key of ``fun`` traced for ``arg_key`` (:meth:`Jitted._key`'s),
    compiled with resolved CPU ``options``; None when it cannot be vouched
    for (see the module docstring)."""
    specs, struct_text = arg_key
    # Static values and argument structures enter the key by repr: only
    # kinds whose repr is their value (a user class's repr need not be).
    if not all(spec[0] == "array" or _plain(spec[2]) for spec in specs):
        return None
    if not _plain_struct(struct_text):
        return None
    text = repr((arg_key, pullback, tuple(static_argnums), options))
    h = _Hasher()
    h.put(frontend_fingerprint(), text)
    try:
        h.obj(fun)
    except (_GiveUp, RecursionError, ValueError, TypeError):
        return None
    return h.h.hexdigest()


__all__ = ["source_key", "frontend_fingerprint", "encode_struct", "decode_struct"]

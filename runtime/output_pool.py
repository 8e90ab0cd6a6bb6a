"""Fresh output arrays whose memory is reused: a pool of large buffers.

A compiled function's outputs are new numpy arrays on every call. For a
large one, a new allocation costs more than the computation writing it:
glibc hands buffers of its mmap threshold (up to 32 MiB) back to the system
when they are freed, so every call faults in every page again (measured at
1024×2048: 6–8 ms of an LSTM cell's 14 ms, docs/performance.md). Here an
output of at least :data:`MIN_BYTES` is carved from a buffer that an
earlier output no longer needs, its pages already mapped.

How memory comes back: each pooled array's ``base`` is a :class:`_Block`
that owns the buffer; numpy keeps a block alive as long as any array or
view of that memory is, and when the last one dies the block returns the
buffer to the pool (``__del__``). A user's array is never reused while
anything can still read it. The pool keeps at most :data:`MAX_BYTES` (and
:data:`MAX_PER_SIZE` buffers of one size); beyond that buffers are freed.

What a user can see: such an array does not own its data
(``a.flags.owndata`` is False, ``a.base`` is a block), so ``a.resize()``
refuses it; everything else behaves as for ``np.empty``. Set
``FERRULE_OUTPUT_POOL=0`` (read at import) or call ``set_enabled(False)``
to allocate every output with ``np.empty``.
"""

import math
import os
import threading
from typing import Dict, List, Tuple

import numpy as np

# Outputs below this size come from np.empty (malloc's heap keeps them).
MIN_BYTES = 1 << 20
MAX_BYTES = 1 << 30
MAX_PER_SIZE = 8
ALIGN = 64          # bytes; a cache line, and an AVX-512 vector
PAGE = 4096

_lock = threading.Lock()
_free: Dict[int, List[np.ndarray]] = {}
_held = [0]         # bytes in _free


_enabled = [os.environ.get("FERRULE_OUTPUT_POOL", "1") != "0"]


def enabled() -> bool:
    return _enabled[0]


def set_enabled(on: bool) -> bool:
    """Turn the pool on or off; returns the previous setting."""
    previous, _enabled[0] = _enabled[0], bool(on)
    return previous


class _Block:
    """One pooled buffer as the owner of the array made from it."""

    __slots__ = ("raw", "size", "__array_interface__")

    def __init__(self, raw: np.ndarray, size: int, shape: Tuple[int, ...], dtype: np.dtype):
        self.raw, self.size = raw, size
        address = raw.ctypes.data
        address += -address % ALIGN
        self.__array_interface__ = {"data": (address, False), "shape": tuple(shape),
                                    "typestr": dtype.str, "version": 3}

    def __del__(self):
        try:
            _give_back(self.size, self.raw)
        except Exception:       # interpreter shutdown: module globals are gone
            pass


def _give_back(size: int, raw: np.ndarray) -> None:
    with _lock:
        free = _free.setdefault(size, [])
        if len(free) < MAX_PER_SIZE and _held[0] + raw.nbytes <= MAX_BYTES:
            free.append(raw)
            _held[0] += raw.nbytes


def empty(shape: Tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, like
    ``np.empty``; large ones from the pool (see the module docstring)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES or not _enabled[0]:
        return np.empty(shape, dtype)
    size = -(-nbytes // PAGE) * PAGE
    with _lock:
        free = _free.get(size)
        raw = free.pop() if free else None
        if raw is not None:
            _held[0] -= raw.nbytes
    if raw is None:
        raw = np.empty(size + ALIGN, np.uint8)
    return np.asarray(_Block(raw, size, shape, dtype))


def held_bytes() -> int:
    """Bytes the pool keeps for reuse now."""
    return _held[0]


def clear() -> None:
    """Free every buffer the pool keeps."""
    with _lock:
        _free.clear()
        _held[0] = 0

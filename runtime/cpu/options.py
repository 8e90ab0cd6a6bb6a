"""How compiled CPU code runs: :class:`CpuOptions`, the one place for its knobs.

Options are a frozen, hashable dataclass: a compiled function is cached per
(signature, options). Where a field is None, the environment decides when a
function is compiled (:meth:`CpuOptions.resolved`):

* ``FERRULE_NUM_THREADS`` — threads for row splitting and for the teams
  inside compiled code (default: the CPUs this process may run on);
* whether GCC's OpenMP runtime (libgomp) loads — the teams need it;
* the host CPU — the vector width the matmul kernel is tiled for.

The process-wide defaults (what ``ferrule.jit`` compiles with) are changed
with :func:`set_defaults` or, for a block, :func:`using` — as the test suite
does to force every function through row splitting (tests/conftest.py).
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Optional

from .codegen import host_narrow_conversions, host_vector_bytes, openmp_runtime


@dataclass(frozen=True)
class CpuOptions:
    """``threads``: row-splitting threads (None: ``FERRULE_NUM_THREADS``, else
    the usable CPUs). ``split_min_elements``: below this many elements
    (inputs + outputs) a call runs on one thread — a thread-pool round trip
    costs ~50-80 us. ``split_min_rows_with_sums``: a function whose results
    are summed over the chunks (weight gradients: each chunk writes a full
    copy to be added) is split only into chunks of at least this many rows
    (measured, 2 cores, an MLP step with 784x1024 weights: 128-row chunks
    already run 1.8x faster than one thread). ``vector_bytes``: the width
    matmul kernels are tiled for (None: the host's; 32 AVX2, 64 AVX-512).
    ``team_threads``: in a function that runs on one thread (not split over
    rows), large matmuls run on a team of this many
    threads inside the compiled code (``parallel-calls``; None: ``threads``
    where libgomp loads, else 1; 1: none).
    ``narrow_conversions``: the float16/bfloat16 conversions written out as
    integer code (``"f16,bf16"``, one of them, or ``""`` for the host's
    instructions; None: those the host has no instructions for).
    """
    threads: Optional[int] = None
    split_min_elements: int = 1 << 20
    split_min_rows_with_sums: int = 32
    vector_bytes: Optional[int] = None
    team_threads: Optional[int] = None
    narrow_conversions: Optional[str] = None

    def resolved(self) -> "CpuOptions":
        """These options with every None field read from the environment."""
        threads = self.threads or _env_threads()
        team = self.team_threads or (threads if openmp_runtime() else 1)
        narrow = self.narrow_conversions
        return replace(self, threads=threads, team_threads=team,
                       vector_bytes=self.vector_bytes or host_vector_bytes(),
                       narrow_conversions=host_narrow_conversions() if narrow is None else narrow)


def _env_threads() -> int:
    env = os.environ.get("FERRULE_NUM_THREADS", "")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"FERRULE_NUM_THREADS must be an integer, got {env!r}") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_defaults = CpuOptions()


def defaults() -> CpuOptions:
    """The options ``ferrule.jit`` compiles with."""
    return _defaults


def set_defaults(options: CpuOptions) -> CpuOptions:
    """Make ``options`` the defaults; returns the previous ones."""
    global _defaults
    previous, _defaults = _defaults, options
    return previous


@contextmanager
def using(**changes):
    """``with using(threads=2): ...`` — the defaults with ``changes``, for a block."""
    previous = set_defaults(replace(_defaults, **changes))
    try:
        yield _defaults
    finally:
        set_defaults(previous)

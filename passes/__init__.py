"""ferrule's compiler passes: one pass per file, each registered by name.

A pipeline is a comma-separated list of pass names (optionally wrapped in
``builtin.module(...)``), exactly as ``mlir-opt --pass-pipeline`` spells it.
Names registered here are ferrule passes written in Python; every other item
is handed to MLIR's own ``PassManager``. :func:`run_pipeline` runs a mixed
list in order; the pipelines themselves are in ``ferrule.runtime.pipelines``.

``support/`` holds what several passes share (it imports no pass);
``workarounds/`` the passes that exist only because of upstream bugs.
"""

from .support.registry import (PassError, register, registered_passes,
                               run_pipeline, split_pipeline)

# Importing the pass modules registers them.
from . import fuse_pointwise  # noqa: F401
from . import forward  # noqa: F401
from . import reverse  # noqa: F401
from . import lower_ad  # noqa: F401
from . import forward_copies  # noqa: F401
from . import workarounds  # noqa: F401  (distinct-results, widen-bools, widen-bool-buffers, copy-to-linalg,
#                                        forward-loop-annotations)
from . import math_to_libm  # noqa: F401
from . import expand_math  # noqa: F401
from . import expand_narrow_floats  # noqa: F401
from . import widen_accumulators  # noqa: F401
from . import tile_matmul  # noqa: F401
from . import parallel_calls  # noqa: F401
from . import tile_transpose  # noqa: F401
from . import fuse_into_reductions  # noqa: F401
from . import tile_matmul_gpu  # noqa: F401
from . import lower_scan  # noqa: F401
from . import hoist_scan_invariants  # noqa: F401
from . import lower_gather  # noqa: F401
from . import lower_callbacks  # noqa: F401
from . import outline_repeated_loops  # noqa: F401
from . import interleave_loops  # noqa: F401
from . import pack_scan_weights  # noqa: F401

__all__ = ["PassError", "register", "registered_passes", "run_pipeline",
           "split_pipeline"]

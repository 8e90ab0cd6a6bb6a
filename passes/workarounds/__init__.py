"""Passes that work around bugs and gaps of upstream MLIR (LLVM 22.1).

Each is a registered pass like any other (its lit test is named after it),
names the LLVM release and the upstream behaviour it works around, and has a
check in tests/test_workarounds.py that runs the upstream passes alone on
the IR that triggers the bug — in a subprocess, since these bugs crash the
process — and fails once upstream no longer misbehaves: then the workaround
(and its place in runtime/pipelines.py) can go.

* ``distinct-results`` — ``buffer-results-to-out-params`` crashes on a value
  returned twice;
* ``widen-bools`` — ``finalize-memref-to-llvm`` aborts on ``i1`` buffers;
* ``widen-bool-buffers`` — the same, for the ``i1`` ownership flags the
  deallocation pipeline creates around loops (``scan``);
* ``copy-to-linalg`` — ``finalize-memref-to-llvm`` lowers strided copies to
  a runner-library call (``memrefCopy``);
* ``forward-loop-annotations`` — ``convert-cf-to-llvm`` leaves a loop
  annotation where translation does not read it.

Two guards outside the passes work around process-killing upstream
behaviour the same way, with checks in the same test file:
``runtime/llvm_translate.py`` (translating an unconverted op segfaults) and
``runtime/cuda_compile/target.py`` (a PTX version too old for the chip makes
LLVM exit).
"""

from . import (copy_to_linalg, distinct_results, loop_annotations,  # noqa: F401 (registers them)
               widen_bool_buffers, widen_bools)

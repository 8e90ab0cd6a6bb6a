"""Every pipeline, CPU and GPU, as named lists of pass names (ferrule's and
upstream's); the targets run them by name (passes are reached only so).

Stages, in order:
  * ``AD`` (:func:`ad_pipeline`): differentiate (lower every ``ad`` op) and
    fuse pointwise regions. After it the module holds only upstream
    dialects, on tensors.
  * ``BUFFERIZE``: tensors -> buffers, with caller-allocated outputs (both
    targets).
  * CPU (:func:`cpu_lowering`): :func:`cpu_loops` (buffers -> loops), then
    ``CPU_TO_LLVM`` (loops -> the LLVM dialect, ready for
    ``translate_module_to_llvmir``).
  * GPU (:mod:`ferrule.runtime.cuda_compile`): ``GPU_PARALLEL_LOOPS``
    (buffers -> parallel loops), the mapping to ``gpu.launch`` (Python),
    ``GPU_OUTLINE``, then :func:`nvvm_pipeline` in each ``gpu.module``.

The workaround passes (``distinct-results``, ``widen-bools``,
``copy-to-linalg``: passes/workarounds/) are marked where they run.
"""

from typing import List

# Pointwise regions are fused again after AD: the derivative code is itself
# pointwise and must merge with the primal it recomputes.
AD = [
    "forward",
    "reverse",
    "lower-ad",
    # ad.gather -> a generic reading the table with tensor.extract;
    # ad.scatter_add -> an scf.for of slice additions. Before inlining: the
    # inliner cannot move unregistered (ad) ops, so a function holding them
    # would stay a call. These regions read tensors: not pointwise, never
    # fused (support/pointwise.py).
    "lower-gather",
    "inline",
    "symbol-dce",
    "canonicalize",
    "cse",
    # A step's work on its consts alone (the primal sweep inside jacrev's
    # and jacfwd's steps) runs once before the loop; before fusion, so it is
    # not fused into per-step regions first.
    "hoist-scan-invariants",
    "fuse-pointwise",
    "canonicalize",
    "cse",
]


def ad_pipeline(pullback: str = "auto"):
    """``AD`` with the reverse pass's pointwise-pullback strategy set."""
    return [f"reverse{{strategy={pullback}}}" if p == "reverse" else p for p in AD]


# Bufferization: function arguments are marked read-only by the runtime
# (signature.mark_inputs_readonly: bufferization.writable = false), results
# become out-parameters that the caller allocates, and the deallocation
# pipeline frees every temporary so a call leaks nothing.
BUFFERIZE = [
    # ad.scan -> scf.for calling its step (a function of its own).
    "lower-scan",
    "func.func(convert-elementwise-to-linalg)",
    "fuse-pointwise",
    # A pointwise region read only by a reduction (sum(x * x)) becomes part
    # of it: no temporary written and read back.
    "fuse-into-reductions",
    # float32 sums accumulate in float64 (accurate, and vectorisable).
    "widen-accumulators",
    "canonicalize",
    "widen-bools",          # workaround: no i1 buffers
    # Let regions write straight into the slices of the tensors they are
    # inserted into (a tiled cotangent, a concatenation) instead of copying.
    "eliminate-empty-tensors",
    "distinct-results",     # workaround: no value returned twice
    # Host callbacks onto buffers: the last tensor-level pass (see its docstring).
    "lower-callbacks",
    # allow-return-allocs-from-loops: a loop's carried tensors (scan) get a
    # new buffer each iteration rather than an error.
    "one-shot-bufferize{bufferize-function-boundaries allow-return-allocs-from-loops "
    "function-boundary-type-conversion=identity-layout-map}",
    # Before results become out-parameters: fold a loop's iter_args that
    # bufferization made in place, so a loop-built result is returned as
    # the allocation itself and can be written into the caller's buffer.
    "canonicalize",
    "buffer-results-to-out-params{hoist-static-allocs modify-public-functions}",
    "canonicalize",
    "buffer-deallocation-pipeline",
    # Deallocation of loop-carried buffers keeps i1 ownership flags in
    # buffers, which the memref-to-LLVM lowering cannot handle.
    "widen-bool-buffers",   # workaround: no i1 buffers after deallocation
    "canonicalize",
    "forward-copies",
    "canonicalize",
]


def cpu_loops(vector_bytes: int = 32, threads: int = 1) -> List[str]:
    """Buffers -> loops for a host whose vector registers are
    ``vector_bytes`` wide (32: AVX2, 64: AVX-512); with ``threads`` ≥ 2,
    large matmuls become team functions
    (``parallel-calls`` runs them).

    The matmul tile is 8 rows × 2 vectors on AVX-512 (16 accumulators of
    its 32 registers; 1024³ float32 measured 14 ms against 33 ms with 4
    rows) and 6 rows × 2 vectors on AVX2: 12 accumulators, B's two vectors
    and the broadcast fill its 16 registers (Zen 2, one thread: 1024³ 28.5
    -> 22.9 ms against 4 rows, 94 GFLOP/s; OpenBLAS 99).
    """
    rows = 8 if vector_bytes >= 64 else 6
    return [
        # Register-tiled vector matmul.
        f"tile-matmul{{lanes-bytes={vector_bytes} rows={rows} threads={threads}}}",
        "copy-to-linalg",       # workaround: no strided memref.copy
        "tile-transpose",       # W.T copied block by block, not row by row
        "func.func(convert-linalg-to-loops)",
        # A loop nest written out several times (a step unrolled in Python)
        # is compiled once, as a function called at each place.
        "outline-repeated-loops",
        # Fused math chains are latency-bound: two vector iterations side by side.
        "interleave-loops{count=2}",
    ]


# Loops -> the LLVM dialect.
CPU_TO_LLVM = [
    "expand-narrow-floats",   # f16/bf16 conversions the host lacks: no libcalls
    "expand-math",
    # float64 transcendentals call the C library, which is accurate where
    # LLVM's own lowering is not (log1p as log(1 + x) loses precision near
    # 0); so does powf, whose exp(y * log x) expansion is wrong for a
    # negative base. The float32 hyperbolics and inverse trigonometric
    # functions too: upstream's math-expand-ops writes them with exp/log,
    # which loses all precision near 0.
    "math-to-libm",
    "math-expand-ops",
    "expand-strided-metadata",
    "lower-affine",
    "convert-scf-to-cf",
    # vector ops appear only in GPU kernels' 16-byte loads/stores, which
    # the CPU also runs when tests emulate the GPU.
    "convert-vector-to-llvm",
    "convert-math-to-llvm",
    "convert-arith-to-llvm",
    "finalize-memref-to-llvm",
    "convert-func-to-llvm",
    "convert-cf-to-llvm",
    "convert-index-to-llvm",
    "reconcile-unrealized-casts",
    # workaround: convert-cf-to-llvm drops the loops' interleave annotations
    "forward-loop-annotations",
]


# Allocations through upstream's generic functions, which the CPU runtime
# defines so that a failed allocation is a MemoryError (runtime/cpu/oom.py).
GUARDED_ALLOCATIONS = "finalize-memref-to-llvm{use-generic-functions=1}"


def cpu_lowering(vector_bytes: int = 32, narrow_conversions: str = "f16,bf16",
                 threads: int = 1) -> List[str]:
    """The whole CPU path after AD, for ``vector_bytes``-wide vectors, with
    allocations the CPU runtime guards (:data:`GUARDED_ALLOCATIONS`) and the
    float16/bfloat16 conversions in ``narrow_conversions`` (``"f16,bf16"``,
    one, or ``""``) written out as integer code; the others are left to
    LLVM, for hosts with F16C / AVX512-BF16 instructions. With ``threads``
    ≥ 2, large matmuls run on a team of that many
    threads (the compiled code then needs libgomp loaded: ``parallel-calls``)."""
    kinds = [k for k in narrow_conversions.split(",") if k]
    narrow = (f"expand-narrow-floats{{f16={'f16' in kinds} bf16={'bf16' in kinds}}}".lower()
              if kinds else None)
    to_llvm = [GUARDED_ALLOCATIONS if p == "finalize-memref-to-llvm"
               else narrow if p == "expand-narrow-floats" else p for p in CPU_TO_LLVM]
    team = [f"parallel-calls{{threads={threads}}}"] if threads > 1 else []
    # A scan step's matmul reads its (loop-invariant) weight packed once,
    # before the loop, in the panels tile-matmul's kernel reads.
    pack = [f"pack-scan-weights{{lanes-bytes={vector_bytes}}}"]
    return [*pack, *BUFFERIZE, *cpu_loops(vector_bytes, threads), *[p for p in to_llvm if p],
            *team]


CPU_LOWERING = cpu_lowering()

# Buffers -> parallel loops, for the GPU mapping (runtime/cuda_compile/mapping.py).
GPU_PARALLEL_LOOPS = [
    # Register tiles of C per thread (4 x 4) instead of one element each.
    "tile-matmul-gpu",
    "func.func(convert-linalg-to-parallel-loops)",
    "func.func(lower-affine)",
    "canonicalize",
    "cse",
]

# After the mapping: each gpu.launch becomes a kernel in its own gpu.module.
GPU_OUTLINE = ["gpu-kernel-outlining", "canonicalize", "cse"]


def nvvm_pipeline(index_bits: int) -> List[str]:
    """The per-``gpu.module`` lowering to the LLVM/NVVM dialects: kernel
    parameters are plain pointers (bare-pointer calling convention), index
    arithmetic is ``index_bits`` wide."""
    return [
        "gpu.module(convert-scf-to-cf,"
        " convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=true"
        f" index-bitwidth={index_bits}}},"
        " canonicalize, reconcile-unrealized-casts)",
    ]

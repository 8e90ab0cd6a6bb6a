"""parallel-calls: each call of a team function runs it on a team of threads.

Expects: the LLVM dialect (after ``convert-func-to-llvm``), with team
functions (:mod:`.support.parallel`: ``llvm.func @__ferrule_team_*``, last
two parameters ``tid``, ``nt`` as ``i64``) called with ``tid = 0, nt = 1``.
Guarantees: for each team function ``@F`` two internal functions are added
and every call of ``@F`` now calls ``@F__par`` with the same arguments:

* ``@F__par(args..., tid, nt)`` reads the process's cap on team sizes
  (the ``i32`` at :data:`TEAM_LIMIT`, which the CPU runtime defines: 1 in
  a child process after ``fork``, where libgomp's threads are gone and a
  team would hang); with a cap of 1 it calls ``@F(args..., 0, 1)``. Else
  it writes ``args`` into a stack array of 8-byte slots (pointers and
  ``i64``s: memref descriptors lower to nothing else) and calls
  ``GOMP_parallel(@F__team, slots, min(T, cap), 0)``, which runs
  ``@F__team`` on a team of at most that many threads (the calling thread
  among them) and returns when all are done;
* ``@F__team(slots)`` reads the arguments back and calls ``@F`` with
  ``tid = omp_get_thread_num()``, ``nt = omp_get_num_threads()``.

The three runtime functions are declared once; they come from GCC's
OpenMP runtime (libgomp), which the CPU runtime loads before it compiles
with ``threads`` ≥ 2 (without it the pipeline does not run this pass and
the team functions run serially where they are called). A team of one
(nested inside another team, say) does all the work on the calling thread.
Option ``threads``: ``T`` (default 2).

A team function that calls anything is refused (``PassError``): a call
it could make (an allocation, a host callback) may fail by unwinding to
the entry point of the calling thread, which a worker thread does not
have. (The matmul kernels ``tile-matmul`` puts in team functions call
nothing.)

Why libgomp's ``GOMP_parallel`` and not upstream's OpenMP lowering
(``convert-scf-to-openmp``): that emits calls to LLVM's OpenMP runtime
(``__kmpc_fork_call``, libomp), which no pinned dependency ships, while
libgomp comes with the C compiler's runtime on Linux; and the team's
threads wait between regions (spinning, then sleeping), so a region costs
a few microseconds, not a thread start.
"""

from typing import List

from mlir import ir

from ..dialect.ir_utils import func_name
from .support.parallel import is_team_function
from .support.registry import PassError, register

# libgomp's functions the wrappers call, as llvm.func declarations, and
# the process's cap on team sizes (an external i32 the CPU runtime defines).
_DECLS = {"GOMP_parallel": "llvm.func @GOMP_parallel(!llvm.ptr, !llvm.ptr, i32, i32)",
          "omp_get_thread_num": "llvm.func @omp_get_thread_num() -> i32",
          "omp_get_num_threads": "llvm.func @omp_get_num_threads() -> i32"}
TEAM_LIMIT = "__ferrule_team_limit"
_LIMIT_DECL = f"llvm.mlir.global external @{TEAM_LIMIT}() {{addr_space = 0 : i32}} : i32"


@register("parallel-calls")
def parallel_calls(module_op: ir.Operation, threads: str = "2") -> None:
    team_threads = int(threads)
    if not 1 <= team_threads <= 256:
        raise ValueError(f"parallel-calls: threads must be 1..256, got {threads!r}")
    block = module_op.regions[0].blocks[0]
    llvm_funcs = [op.operation for op in block.operations if op.operation.name == "llvm.func"]
    names = {func_name(op.operation) for op in block.operations
             if "sym_name" in op.operation.attributes}
    teams = [f for f in llvm_funcs if is_team_function(func_name(f)) and len(f.regions[0].blocks)]
    if not teams:
        return
    # First the existing calls (the wrappers added below call @F itself).
    _redirect_calls(module_op, {func_name(f) for f in teams})
    decls = [*_DECLS.values(), _LIMIT_DECL]
    for fn in teams:
        name = func_name(fn)
        types = [str(a.type) for a in fn.regions[0].blocks[0].arguments]
        _check_team_function(fn, name, types)
        # Parsed on its own (with the declarations it refers to), then the
        # functions the module lacks are moved in.
        text = "\n".join([*decls, f"llvm.func @{name}({', '.join(types)})",
                          *_wrappers(name, types, team_threads)])
        parsed = ir.Module.parse(text)
        for op in list(parsed.body.operations):
            op = op.operation
            if func_name(op) not in names:
                names.add(func_name(op))
                block.append(op)


def _check_team_function(fn: ir.Operation, name: str, types: List[str]) -> None:
    if types[-2:] != ["i64", "i64"]:
        raise PassError("parallel-calls", f"team function @{name} must end with two i64 "
                        f"parameters (tid, nt), has ({', '.join(types)})", fn.location)
    calls = []

    def visit(op):
        if op.name == "llvm.call":
            calls.append(op)
        return ir.WalkResult.ADVANCE
    fn.walk(visit)
    if calls:
        raise PassError("parallel-calls", f"team function @{name} calls "
                        f"{calls[0].attributes['callee']}: a team function may call nothing",
                        calls[0].location)


def _wrappers(name: str, types: List[str], team_threads: int) -> List[str]:
    """``@name__team`` and ``@name__par`` as LLVM-dialect text."""
    n = len(types) - 2
    args = ", ".join(f"%a{i}" for i in range(n))
    sig = ", ".join(types)
    team = [f"llvm.func internal @{name}__team(%slots: !llvm.ptr) {{"]
    for i, t in enumerate(types[:-2]):
        team += [f"  %p{i} = llvm.getelementptr %slots[{i}] : (!llvm.ptr) -> !llvm.ptr, i64",
                 f"  %a{i} = llvm.load %p{i} : !llvm.ptr -> {t}"]
    team += ["  %t = llvm.call @omp_get_thread_num() : () -> i32",
             "  %n = llvm.call @omp_get_num_threads() : () -> i32",
             "  %tid = llvm.sext %t : i32 to i64",
             "  %nt = llvm.sext %n : i32 to i64",
             f"  llvm.call @{name}({args}{', ' if n else ''}%tid, %nt) : ({sig}) -> ()",
             "  llvm.return", "}"]
    params = ", ".join([*(f"%a{i}: {t}" for i, t in enumerate(types[:-2])),
                        "%tid: i64", "%nt: i64"])
    par = [f"llvm.func internal @{name}__par({params}) {{",
           f"  %count = llvm.mlir.constant({max(n, 1)} : i64) : i64",
           "  %slots = llvm.alloca %count x i64 : (i64) -> !llvm.ptr",
           f"  %limit_at = llvm.mlir.addressof @{TEAM_LIMIT} : !llvm.ptr",
           "  %limit = llvm.load %limit_at : !llvm.ptr -> i32",
           f"  %most = llvm.mlir.constant({team_threads} : i32) : i32",
           "  %threads = llvm.intr.smin(%limit, %most) : (i32, i32) -> i32",
           "  %one = llvm.mlir.constant(1 : i32) : i32",
           "  %alone = llvm.icmp \"sle\" %threads, %one : i32",
           "  llvm.cond_br %alone, ^serial, ^team",
           "^serial:",
           "  %t0 = llvm.mlir.constant(0 : i64) : i64",
           "  %n1 = llvm.mlir.constant(1 : i64) : i64",
           f"  llvm.call @{name}({args}{', ' if n else ''}%t0, %n1) : ({sig}) -> ()",
           "  llvm.return",
           "^team:"]
    for i, t in enumerate(types[:-2]):
        par += [f"  %p{i} = llvm.getelementptr %slots[{i}] : (!llvm.ptr) -> !llvm.ptr, i64",
                f"  llvm.store %a{i}, %p{i} : {t}, !llvm.ptr"]
    par += [f"  %fn = llvm.mlir.addressof @{name}__team : !llvm.ptr",
            "  %flags = llvm.mlir.constant(0 : i32) : i32",
            "  llvm.call @GOMP_parallel(%fn, %slots, %threads, %flags) : "
            "(!llvm.ptr, !llvm.ptr, i32, i32) -> ()",
            "  llvm.return", "}"]
    return team + par


def _redirect_calls(module_op: ir.Operation, wrapped) -> None:
    def visit(op):
        if op.name == "llvm.call" and "callee" in op.attributes:
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            if callee in wrapped:
                op.attributes["callee"] = ir.FlatSymbolRefAttr.get(f"{callee}__par")
        return ir.WalkResult.ADVANCE
    module_op.walk(visit)

"""Team functions: the contract between the passes that split work over
threads (``tile-matmul{threads=N}``) and ``parallel-calls``, which runs it.

A *team function* is a private ``func.func`` whose name starts with
:data:`TEAM_PREFIX` and whose last two parameters are ``index`` values
``tid`` and ``nt``: it does thread ``tid``'s share of some work split over
``nt`` threads, and the shares of ``tid = 0 .. nt-1`` together do all of
it. It must not allocate or call anything (it may run on a worker thread,
from which an allocation failure could not unwind to the caller). A pass
that creates one calls it with ``tid = 0, nt = 1`` — the whole work on the
calling thread — so the IR keeps its serial meaning until
``parallel-calls`` (on the LLVM dialect) replaces each such call by one
that runs the function on a team of threads.
"""

from typing import Callable, Dict, Hashable, List, Sequence

from mlir import ir
from mlir.dialects import arith, func

from ...dialect.ir_utils import find_symbol

TEAM_PREFIX = "__ferrule_team_"


def is_team_function(name: str) -> bool:
    return name.startswith(TEAM_PREFIX)


class TeamFunctions:
    """Creates the team functions of one pass run over ``module_op``, one
    per distinct ``key`` (identical work shares one function), for teams of
    up to ``threads`` threads."""

    def __init__(self, module_op: ir.Operation, kind: str, threads: int):
        self.module_op = module_op
        self.kind = kind
        self.threads = threads
        self._names: Dict[Hashable, str] = {}

    def _new_name(self) -> str:
        n = len(self._names)
        while find_symbol(self.module_op, f"{TEAM_PREFIX}{self.kind}{n}") is not None:
            n += 1
        return f"{TEAM_PREFIX}{self.kind}{n}"

    def call(self, key: Hashable, operands: Sequence[ir.Value],
             body: Callable[[List[ir.Value], ir.Value, ir.Value], None]) -> None:
        """Call, at the current insertion point, the team function for
        ``key`` on ``operands`` (+ ``tid = 0, nt = 1``); on the first call
        for ``key`` the function is created, its body emitted by
        ``body(args, tid, nt)`` (``args``: its parameters for ``operands``).
        """
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self._new_name()
            self._create(name, [v.type for v in operands], body)
        index = ir.IndexType.get()
        func.CallOp([], ir.FlatSymbolRefAttr.get(name),
                    [*operands, arith.constant(index, 0), arith.constant(index, 1)])

    def _create(self, name, types, body) -> None:
        index = ir.IndexType.get()
        module_block = self.module_op.regions[0].blocks[0]
        with ir.InsertionPoint(module_block):
            fn = func.FuncOp(name, ir.FunctionType.get([*types, index, index], []))
            fn.attributes["sym_visibility"] = ir.StringAttr.get("private")
            entry = fn.add_entry_block()
            with ir.InsertionPoint(entry):
                args = list(entry.arguments)
                body(args[:-2], args[-2], args[-1])
                func.ReturnOp([])

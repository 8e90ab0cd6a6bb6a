"""lower-ad: remove the ``ad`` ops that differentiation did not consume.

Expects: ``forward`` and ``reverse`` have run.
Guarantees: no ``ad`` op remains but ``ad.scan`` (a loop, not a derivative:
``lower-scan`` turns it into ``scf.for`` after the AD pipeline, so that its
step stays one function through the tensor-level passes) and ``ad.gather`` /
``ad.scatter_add`` (``lower-gather``, next in the pipeline, lowers them).
``ad.stop_gradient`` becomes its operand. An
``ad.custom_rrule`` or ``ad.custom_frule`` outside any differentiated code is
just a call of its primal callee; an ``ad.pure_callback`` is a call of the
external function ``@__ferrule_callback_<n>`` on tensors (declared here;
``lower-callbacks`` moves it onto buffers before bufferization); any other
``ad`` op left over is an error naming it (never silently dropped).
Why a call: upstream passes (the inliner first) do not touch ops of an
unregistered dialect, and the functions holding them would not inline.
"""

from mlir import ir

from ..dialect.builders import callback_symbol
from ..dialect.ir_utils import create, find_symbol, replace_by_call
from .support.registry import PassError, register


# Not derivatives: ops the later pipeline lowers.
_KEPT = ("ad.scan", "ad.gather", "ad.scatter_add")


@register("lower-ad")
def lower_ad(module_op: ir.Operation) -> None:
    leftovers = []
    module_op.walk(lambda o: (leftovers.append(o.operation)
                              if o.operation.name.startswith("ad.")
                              and o.operation.name not in _KEPT else None,
                              ir.WalkResult.ADVANCE)[1])
    for op in leftovers:
        if op.name == "ad.stop_gradient":
            op.results[0].replace_all_uses_with(op.operands[0])
            op.erase()
            continue
        if op.name == "ad.pure_callback":
            _callback_call(module_op, op)
            continue
        if op.name not in ("ad.custom_rrule", "ad.custom_frule"):
            raise PassError("lower-ad", f"'{op.name}' was not lowered; run the "
                            f"forward and reverse passes first", op.location)
        replace_by_call(op, op.attributes["callee"])


def _callback_call(module_op: ir.Operation, op: ir.Operation) -> None:
    name = callback_symbol(ir.IntegerAttr(op.attributes["callback"]).value)
    if find_symbol(module_op, name) is None:
        ftype = ir.FunctionType.get([v.type for v in op.operands], [r.type for r in op.results])
        with ir.InsertionPoint.at_block_begin(module_op.regions[0].blocks[0]), op.location:
            create("func.func", [], [], {
                "sym_name": ir.StringAttr.get(name),
                "function_type": ir.TypeAttr.get(ftype),
                "sym_visibility": ir.StringAttr.get("private")}, regions=1)
    replace_by_call(op, ir.FlatSymbolRefAttr.get(name))

"""``Lowered.explain()``: what differentiated each call site, and what it kept.

Read off the traced IR (before the passes), so it states what the compiler
was asked to do at each ``ad`` op and rule call; the strategy facts are those
of the passes (pointwise pullbacks recompute from their inputs).
"""

from typing import Dict, List

import numpy as np
from mlir import ir

from .dialect.ir_utils import loc_where


def _nbytes(t) -> int:
    t = ir.RankedTensorType(t)
    width = {"f32": 4, "f64": 8, "i1": 1, "i32": 4}.get(str(t.element_type), 8)
    return int(np.prod(t.shape, dtype=np.int64)) * width


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def explain(module_text: str, ctx: ir.Context, ad_text: str = "") -> str:
    """A per-call-site report of the differentiation in ``module_text``, plus
    the reverse pass's pullback choices recorded in ``ad_text``."""
    with ctx:
        module = ir.Module.parse(module_text)
        ops: List[ir.Operation] = []
        module.operation.walk(lambda o: (ops.append(o.operation) if o.operation.name.startswith("ad.")
                                         else None, ir.WalkResult.ADVANCE)[1])
        frules: Dict[str, List[ir.Operation]] = {}
        for op in ops:
            if op.name == "ad.frule_via_ad":
                fn = op.parent
                while fn is not None and fn.name != "func.func":
                    fn = fn.parent
                name = ir.StringAttr(fn.attributes["sym_name"]).value if fn else "?"
                frules.setdefault(name, []).append(op)
        lines = []
        for op in ops:
            if "callee" not in op.attributes:   # ad.gather, ad.scatter_add, ad.stop_gradient
                continue
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
            at = loc_where(op.location)
            if op.name == "ad.vjp":
                lines.append(f"{at}: reverse mode of @{callee} (built-in): pointwise regions "
                             f"get backward regions that recompute from their inputs; "
                             f"kept between the sweeps: nothing beyond the inputs")
            elif op.name == "ad.jvp":
                k = ir.IntegerAttr(op.attributes["num_directions"]).value
                lines.append(f"{at}: forward mode of @{callee} ({k} direction(s)), dual-number "
                             f"regions computing primal and tangents in one sweep")
            elif op.name == "ad.custom_rrule":
                rule = ir.StringAttr(op.attributes["rule"]).value
                pb = ir.FlatSymbolRefAttr(op.attributes["pullback"]).value
                fr = frules.get(pb, [])
                dirs = sum(ir.IntegerAttr(f.attributes["num_directions"]).value for f in fr)
                fwd = (f"yes: {len(fr)} frule_via_ad call(s), {dirs} tangent direction(s) "
                       f"fused into one region" if fr else "no")
                kept = sum(_nbytes(v.type) for v in op.operands)
                lines.append(f"{at}: @{callee} differentiated by rule {rule} (rrule); forward "
                             f"mode ran: {fwd}; residuals: the rule's arguments "
                             f"({_fmt_bytes(kept)}, views of the inputs), no intermediates; "
                             f"under forward mode the primal is differentiated instead")
            elif op.name == "ad.custom_frule":
                rule = ir.StringAttr(op.attributes["rule"]).value
                lines.append(f"{at}: @{callee} has forward rule {rule}: used by forward mode; "
                             f"reverse mode differentiates the primal (frule transposition is "
                             f"not implemented)")
        if ad_text:
            ad_mod = ir.Module.parse(ad_text)
            if "ferrule.pullbacks" in ad_mod.operation.attributes:
                lines += [ir.StringAttr(a).value
                          for a in ad_mod.operation.attributes["ferrule.pullbacks"]]
        if not lines:
            return "no differentiation in this function"
        return "\n".join(lines)

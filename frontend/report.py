"""``Lowered.explain()``: what differentiated each call site, and what it kept.

Read off the traced IR (before the passes), so it states what the compiler
was asked to do at each ``ad`` op and rule call; the strategy facts are those
of the passes (pointwise pullbacks recompute from their inputs).
"""

import re
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


def _prim(callee: str) -> str:
    """The primitive's name from its traced function's symbol (made unique
    with a ``_<n>`` suffix, or ``_with_frule`` for its frule's wrapper)."""
    return re.sub(r"(_with_frule)?(_\d+)?$", "", callee) or callee


def _rule_uses(ad_module) -> Dict[str, List[tuple]]:
    """What the AD passes recorded in ``ferrule.rules``: per call site,
    ``(mode, rule, how)``."""
    uses: Dict[str, List[tuple]] = {}
    if ad_module is not None and "ferrule.rules" in ad_module.operation.attributes:
        for a in ad_module.operation.attributes["ferrule.rules"]:
            at, _, mode, rule, how = ir.StringAttr(a).value.split(" | ")
            if (mode, rule, how) not in uses.setdefault(at, []):
                uses[at].append((mode, rule, how))
    return uses


def _served(uses: List[tuple]) -> str:
    parts = []
    for mode in ("reverse", "forward"):
        for m, rule, how in uses:
            if m != mode:
                continue
            kind = ("rrule" if how == "its pullback" or "pullback is linear" in how
                    else "frule")
            if how == "its pullback":
                parts.append(f"{mode} mode used rrule {rule} (its pullback)")
            elif how == "as written":
                parts.append(f"{mode} mode used frule {rule} as written")
            else:
                parts.append(f"{mode} mode used {kind} {rule}, {how}")
    return "; ".join(parts) if parts else "not differentiated here (only its primal ran)"


def explain(module_text: str, ctx: ir.Context, ad_text: str = "") -> str:
    """A per-call-site report of the differentiation in ``module_text``, plus
    what the AD passes recorded in ``ad_text``: which rule served which
    mode at each call site (and whether it was transposed), and the reverse
    pass's pullback choices."""
    with ctx:
        module = ir.Module.parse(module_text)
        ad_module = ir.Module.parse(ad_text) if ad_text else None
        uses = _rule_uses(ad_module)
        funcs = {ir.StringAttr(f.attributes["sym_name"]).value: f
                 for f in module.body.operations if f.operation.name == "func.func"}
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

        def frule_in(callee):
            f = funcs.get(callee)
            if f is None or not len(f.regions[0].blocks):
                return None
            for o in f.regions[0].blocks[0].operations:
                if o.operation.name == "ad.custom_frule":
                    return ir.StringAttr(o.operation.attributes["rule"]).value
            return None
        lines, sites = [], {}
        for op in ops:
            if op.name in ("ad.custom_rrule", "ad.custom_frule"):
                at = loc_where(op.location)
                site = sites.get(at)
                if site is None:
                    site = sites[at] = {"prim": _prim(ir.FlatSymbolRefAttr(
                        op.attributes["callee"]).value), "rrule": None, "frule": None,
                        "extra": "", "index": len(lines)}
                    lines.append(None)
                rule = ir.StringAttr(op.attributes["rule"]).value
                if op.name == "ad.custom_frule":
                    site["frule"] = rule
                    continue
                site["rrule"] = rule
                site["frule"] = site["frule"] or frule_in(
                    ir.FlatSymbolRefAttr(op.attributes["callee"]).value)
                pb = ir.FlatSymbolRefAttr(op.attributes["pullback"]).value
                fr = frules.get(pb, [])
                dirs = sum(ir.IntegerAttr(f.attributes["num_directions"]).value for f in fr)
                fwd = (f"yes: {len(fr)} frule_via_ad call(s), {dirs} tangent direction(s) "
                       f"fused into one region" if fr else "no")
                kept = sum(_nbytes(v.type) for v in op.operands)
                site["extra"] = (f"; inside rrule {rule} forward mode ran: {fwd}; residuals: "
                                 f"the rule's arguments ({_fmt_bytes(kept)}, views of the "
                                 f"inputs), no intermediates")
                continue
            callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value \
                if "callee" in op.attributes else ""
            at = loc_where(op.location)
            if op.name == "ad.vjp":
                lines.append(f"{at}: reverse mode of @{callee} (built-in): pointwise regions "
                             f"get backward regions that recompute from their inputs; "
                             f"kept between the sweeps: nothing beyond the inputs")
            elif op.name == "ad.jvp":
                k = ir.IntegerAttr(op.attributes["num_directions"]).value
                lines.append(f"{at}: forward mode of @{callee} ({k} direction(s)), dual-number "
                             f"regions computing primal and tangents in one sweep")
            elif op.name == "ad.pure_callback":
                name = ir.StringAttr(op.attributes["name"]).value
                lines.append(f"{at}: pure_callback {name!r}: host Python called from the "
                             f"compiled code (not differentiable by itself)")
        for at, site in sites.items():
            have = ", ".join(f"{k} {site[k]}" for k in ("rrule", "frule") if site[k])
            lines[site["index"]] = (f"{at}: @{site['prim']} (rules: {have}): "
                                    f"{_served(uses.get(at, []))}{site['extra']}")
        if ad_module is not None and "ferrule.pullbacks" in ad_module.operation.attributes:
            lines += [ir.StringAttr(a).value
                      for a in ad_module.operation.attributes["ferrule.pullbacks"]]
        baked = _baked_constants(module)
        if not lines:
            lines = ["no differentiation in this function"]
        return "\n".join(lines + baked)


def _baked_constants(module) -> List[str]:
    """One line per array constant that came from the user's code (marked
    ``ferrule.captured`` by :func:`ferrule.core.asarray_traced`): a numpy
    array the function read from a global or a closure is copied into the
    code when traced, as JAX does — a later change to that array is not
    seen (docs/errors.md)."""
    found: List[str] = []

    def visit(o):
        op = o.operation
        if op.name == "arith.constant" and "ferrule.captured" in op.attributes:
            t = ir.RankedTensorType(op.result.type)
            found.append(f"{loc_where(op.location)}: a constant array {t.element_type}"
                         f"{list(t.shape)} ({_fmt_bytes(_nbytes(t))}) is baked into the "
                         f"code (a numpy array read from a global or closure is copied "
                         f"when traced; later changes to it are not seen: pass it as an "
                         f"argument instead)")
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return found

"""Derivative rules of ``ad.scan``, for the forward and reverse passes.

* :func:`jvp` — forward mode: a scan of the step's JVP. The tangents of the
  carries join the carries, the tangents of the xs join the xs, the
  tangents of the consts join the consts; one new step function computes
  primal and tangents together (JAX's scan JVP).
* :func:`forward` / :func:`backward` — reverse mode. The step's VJP
  (built by the reverse pass as for any function) is split into
    - a forward step: the primal step that also returns, as extra stacked
      outputs, the values the backward needs (its *residuals*), and
    - a backward step: cotangents of the step's outputs (and the residuals of
      step t) -> cotangents of its inputs;
  the forward sweep runs a scan of the forward step, the backward sweep a
  scan of the backward step in the opposite direction, whose carries are
  the carries' cotangents plus running sums of the consts' cotangents.

Which values become residuals comes from the step's own VJP: its pointwise
regions' pullbacks recompute from their inputs or keep partials, as the
reverse pass's cost model chose. On top of that the split
  - hoists loop-invariant work (anything computed from the consts alone,
    like a transposed weight for ``dh = dG @ W.T``) out of both loops:
    computed once, passed to each step;
  - recomputes in the backward step, instead of storing, whatever only the
    backward uses, except matrix products;
  - stores nothing for xs and consts (the backward reads them again), and
    the carry entering each step when the backward reads it;
  - sums a const's cotangent terms that are matmuls or batch reductions of
    per-step values after the loop, on the stacked operands
    (:mod:`.scan_terms`).
The per-step residual bytes are recorded in ``ferrule.pullbacks``.

The function-building callables (``jvp_function``, ``vjp_function``) are
passed in by the passes, so this module depends on neither.
"""

from typing import Dict, List, Optional, Set

import numpy as np
from mlir import ir

from mlir import passmanager

from . import ad_common as ad
from ...dialect.ir_utils import (block_ops, clone_with_remap, element_type, find_func, func_body,
                                 func_name, loc_where, shape_of, values_used)
from ...dialect import builders
from .scan_terms import _stackable_terms, _stacked_matmul, _stacked_sum

_MATMULS = ("linalg.matmul", "linalg.batch_matmul")


def _segments(op: ir.Operation):
    n_c, n_x, n_k = ad.segment_sizes(op)
    ops = list(op.operands)
    return n_c, n_x, n_k, ops[:n_c], ops[n_c:n_c + n_x], ops[n_c + n_x:]


def _attrs(op: ir.Operation):
    return (ad.int_attr(op, "length"), ad.int_attr(op, "reverse") != 0, ad.callee_of(op))


def _stacked(t: ir.Type, length: int) -> ir.Type:
    t = ir.RankedTensorType(t)
    return ir.RankedTensorType.get([length, *t.shape], t.element_type)


def _slice_type(t: ir.Type) -> ir.Type:
    t = ir.RankedTensorType(t)
    return ir.RankedTensorType.get(list(t.shape)[1:], t.element_type)


def _emit_scan(callee: str, init, xs, consts, length: int, reverse: bool,
               n_y_types: List[ir.Type], remat: bool = False) -> List[ir.Value]:
    """``ad.scan`` at the current insertion point; ``n_y_types`` are the
    step's y slice types."""
    types = [v.type for v in init] + [_stacked(t, length) for t in n_y_types]
    return list(builders.scan(callee, list(init), list(xs), list(consts), types, length,
                              reverse, remat).results)


def _nbytes(t: ir.Type) -> int:
    width = 8 if str(element_type(t)) in ("f64", "i64") else 4
    return int(np.prod(shape_of(t), dtype=np.int64)) * width


# ------------------------------------------------------------------- forward mode

def jvp(module_op, op: ir.Operation, env, tan, K: int, jvp_function) -> None:
    """Forward rule of ``ad.scan``: K tangent directions (``tan[v][d]``, None
    for a zero tangent) through one scan of the step's JVP."""
    n_c, n_x, n_k, init, xs, consts = _segments(op)
    length, reverse, callee = _attrs(op)
    operands = list(op.operands)
    in_tans = [tan.get(v, [None] * K) for v in operands]
    dirs = [d for d in range(K) if any(t[d] is not None for t in in_tans)]
    results = list(op.results)
    if not dirs:
        clone_with_remap(op, env)
        for r in results:
            tan[r] = [None] * K
        return
    # A carry's tangent is in general nonzero after the first step even if
    # its start is zero: every carry carries a tangent in every direction.
    mask = [[True] * n_c + [in_tans[n_c + j][d] is not None for j in range(n_x + n_k)]
            for d in dirs]
    Kp = len(dirs)
    fn = jvp_function(module_op, callee, Kp, mask, op.location)
    step = find_func(module_op, callee)
    ftype = ir.FunctionType(ir.TypeAttr(step.attributes["function_type"]).value)
    arg_types, out_types = list(ftype.inputs), list(ftype.results)
    n_y = len(out_types) - n_c
    c_t, x_t, k_t = arg_types[:n_c], arg_types[n_c:n_c + n_x], arg_types[n_c + n_x:]
    # Wrapper step: (c, dc per direction | x, nonzero dx | k, nonzero dk)
    #            -> (c', dc' per direction, y, dy per direction).
    x_nz = [(d, j) for d in range(Kp) for j in range(n_x) if mask[d][n_c + j]]
    k_nz = [(d, j) for d in range(Kp) for j in range(n_k) if mask[d][n_c + n_x + j]]
    w_types = (c_t + c_t * Kp + x_t + [x_t[j] for _, j in x_nz]
               + k_t + [k_t[j] for _, j in k_nz])
    w = ad.new_func(module_op, f"{callee}_scan_jvp", w_types, op.location)
    a = list(func_body(w).arguments)
    pos = 0
    c, pos = a[pos:pos + n_c], pos + n_c
    dc = [a[pos + d * n_c:pos + (d + 1) * n_c] for d in range(Kp)]
    pos += Kp * n_c
    x, pos = a[pos:pos + n_x], pos + n_x
    dx = dict(zip(x_nz, a[pos:pos + len(x_nz)]))
    pos += len(x_nz)
    k, pos = a[pos:pos + n_k], pos + n_k
    dk = dict(zip(k_nz, a[pos:pos + len(k_nz)]))
    with ir.InsertionPoint(func_body(w)), op.location:
        tangents = []
        for d in range(Kp):
            tangents += dc[d]
            tangents += [dx[(d, j)] for j in range(n_x) if (d, j) in dx]
            tangents += [dk[(d, j)] for j in range(n_k) if (d, j) in dk]
        res = ad.call(fn, [*c, *x, *k, *tangents])
    n_out = n_c + n_y
    outs, touts = res[:n_out], res[n_out:]
    td = [touts[d * n_out:(d + 1) * n_out] for d in range(Kp)]
    w_results = (outs[:n_c] + [v for d in range(Kp) for v in td[d][:n_c]]
                 + outs[n_c:] + [v for d in range(Kp) for v in td[d][n_c:]])
    ad.finish_func(w, w_results)
    # The scan of the wrapper.
    with op.location:
        s_init = [env[v] for v in init]
        for d in dirs:
            s_init += [t if (t := tan.get(v, [None] * K)[d]) is not None else ad.zeros_like(env[v])
                       for v in init]
        s_xs = [env[v] for v in xs] + [in_tans[n_c + j][dirs[d]] for d, j in x_nz]
        s_k = [env[v] for v in consts] + [in_tans[n_c + n_x + j][dirs[d]] for d, j in k_nz]
        y_types = out_types[n_c:]
        new = _emit_scan(func_name(w), s_init, s_xs, s_k, length, reverse,
                         y_types * (1 + Kp), ad.int_attr(op, "remat") != 0)
    carries, ys = new[:n_c * (1 + Kp)], new[n_c * (1 + Kp):]
    for j, r in enumerate(results[:n_c]):
        env[r] = carries[j]
        tan[r] = [None] * K
        for dd, d in enumerate(dirs):
            tan[r][d] = carries[n_c * (1 + dd) + j]
    for j, r in enumerate(results[n_c:]):
        env[r] = ys[j]
        tan[r] = [None] * K
        for dd, d in enumerate(dirs):
            tan[r][d] = ys[n_y * (1 + dd) + j]


# ------------------------------------------------------------------- reverse mode

class _Split:
    """The parts of a step VJP ``F(args, cts) -> (outs, arg cts)``.

    ``hoisted``: primal ops that depend on the consts only (done once,
    outside the loops); ``fwd``: the rest of the primal ops the forward step
    keeps; ``bwd``: the ops of the backward step (everything that depends on
    a cotangent, plus primal ops only the backward uses, but for matmuls).
    """

    def __init__(self, F: ir.Operation, n_c: int, n_x: int, n_k: int):
        block = func_body(F)
        self.args = list(block.arguments)
        n_args = n_c + n_x + n_k
        self.primal_args, self.ct_args = self.args[:n_args], self.args[n_args:]
        ops = block_ops(block)
        self.ret = ops[-1]
        body = ops[:-1]
        const_args = set(self.args[n_c + n_x:n_args])
        tangent: Set[ir.Value] = set(self.ct_args)
        invariant: Set[ir.Value] = set(const_args)
        kind: Dict[ir.Operation, str] = {}
        for o in body:
            used = values_used(o)
            if any(v in tangent for v in used):
                kind[o] = "bwd"
                tangent.update(o.results)
            elif all(v in invariant for v in used):
                kind[o] = "hoist"
                invariant.update(o.results)
            else:
                kind[o] = "fwd"
        # Primal ops only the backward reads move into it (recomputed per
        # backward step instead of stored per forward step); matmuls stay.
        n_out = len(self.ret.operands) - n_args
        fwd_uses = set(self.ret.operands[:n_out])
        for o in reversed(body):
            if kind[o] == "fwd" and (o.name in _MATMULS
                                     or any(r in fwd_uses for r in o.results)):
                fwd_uses.update(values_used(o))
        for o in body:
            if kind[o] == "fwd" and not any(r in fwd_uses for r in o.results):
                kind[o] = "bwd"
        self.kind = kind
        self.body = body
        self.n_out = n_out

    def ops_of(self, k: str) -> List[ir.Operation]:
        return [o for o in self.body if self.kind[o] == k]

    def defined_by(self, v: ir.Value) -> Optional[str]:
        owner = v.owner
        if isinstance(owner, ir.Block):
            return None
        return self.kind.get(owner.operation if hasattr(owner, "operation") else owner)


def _needed(ops: List[ir.Operation], extra: List[ir.Value]) -> List[ir.Value]:
    """Values ``ops`` (and ``extra``) read that ``ops`` do not define, in
    first-use order."""
    defined = {r for o in ops for r in o.results}
    seen, out = set(), []
    for v in [u for o in ops for u in values_used(o)] + list(extra):
        if v in seen or v in defined:
            continue
        seen.add(v)
        out.append(v)
    return out


def _tidy(fn: ir.Operation) -> None:
    """Canonicalize and CSE one function in place: the step's VJP, before it
    is split, so that values its code no longer reads (a recompute region's
    unused inputs, say) are not taken for residuals."""
    passmanager.PassManager.parse("func.func(canonicalize,cse)").run(fn)


def _live_ops(ops: List[ir.Operation], roots: List[ir.Value]) -> List[ir.Operation]:
    """The ops of ``ops`` that ``roots`` depend on, in order."""
    need = set(roots)
    live = set()
    for o in reversed(ops):
        if any(r in need for r in o.results):
            live.add(o)
            need.update(values_used(o))
    return [o for o in ops if o in live]


def forward(module_op, op: ir.Operation, env, active, vjp_function, strategy: str):
    """Forward sweep of ``ad.scan`` inside a VJP being built: emit the
    forward scan (outputs into ``env``); return what :func:`backward` needs."""
    n_c, n_x, n_k, init, xs, consts = _segments(op)
    length, reverse, callee = _attrs(op)
    step = find_func(module_op, callee)
    ftype = ir.FunctionType(ir.TypeAttr(step.attributes["function_type"]).value)
    out_types = list(ftype.results)
    n_y = len(out_types) - n_c
    wanted = [True] * n_c + [v in active for v in xs] + [v in active for v in consts]
    # A step's pointwise pullbacks may keep expensive results: its arrays
    # are one step's slices (support/pullback.py, "auto-in-loop").
    F = vjp_function(module_op, callee, [True] * (n_c + n_y), op.location,
                     "auto-in-loop" if strategy == "auto" else strategy, wanted)
    _tidy(F)
    split = _Split(F, n_c, n_x, n_k)
    c_args = split.primal_args[:n_c]
    x_args = split.primal_args[n_c:n_c + n_x]
    k_args = split.primal_args[n_c + n_x:]
    arg_cts = list(split.ret.operands)[split.n_out:]
    outs = list(split.ret.operands)[:split.n_out]
    # Hoisted (loop-invariant) values, computed once in the enclosing function.
    hoist_env = {a: env[v] for a, v in zip(k_args, consts)}
    for o in split.ops_of("hoist"):
        clone_with_remap(o, hoist_env)

    def is_inv(v):  # a hoisted value (the consts themselves are passed anyway)
        return split.defined_by(v) == "hoist"

    def is_cheap(v):  # rematerialised where needed, never passed
        owner = v.owner
        return (not isinstance(owner, ir.Block) and split.defined_by(v) == "hoist"
                and not len(owner.operation.operands))

    def per_step(v):  # a value that differs from step to step
        return v not in k_args and split.defined_by(v) != "hoist"

    fwd_ops = split.ops_of("fwd")
    # remat: the backward step recomputes the whole step from what entered
    # it, so only the carries are stored (scan(checkpoint=k)'s outer loop).
    remat = ad.int_attr(op, "remat") != 0
    bwd_all = [o for o in split.body if split.kind[o] == "bwd"
               or (remat and split.kind[o] == "fwd")]
    k_active = [j for j in range(n_k) if consts[j] in active]
    x_active = [j for j in range(n_x) if xs[j] in active]
    ct_c, ct_y = split.ct_args[:n_c], split.ct_args[n_c:]
    # A const's cotangent is a sum over the steps. Its matmul and reduction
    # terms of per-step values are computed once after the loop from the
    # stacked operands (one large GEMM instead of one small one and a
    # weight-sized add per step); the rest is summed in the loop.
    terms: Dict[int, list] = {}
    rest: Dict[int, list] = {}
    for j in k_active:
        v = arg_cts[n_c + n_x + j]
        terms[j], rest[j] = (([], [v]) if remat
                             else _stackable_terms(v, per_step))
    operands = [u for j in k_active for t in terms[j]
                for u in ((t[1], t[3]) if t[0] == "mm" else (t[1],))]
    stored_operands = [u for u in operands
                       if u in c_args or u in x_args or split.defined_by(u) == "fwd"]
    extra_y = []             # per-step operands the backward step outputs, stacked
    ct_x_vals = [arg_cts[n_c + j] for j in x_active]
    for u in operands:
        if u in stored_operands or u in ct_y or u in extra_y or u in ct_x_vals:
            continue
        extra_y.append(u)
    b_roots = (list(arg_cts[:n_c]) + [r for j in k_active for r in rest[j]] + ct_x_vals
               + extra_y)
    bwd_ops = _live_ops(bwd_all, b_roots)
    bwd_in = _needed(bwd_ops, [v for v in b_roots if v not in split.ct_args])
    bwd_in = [v for v in bwd_in if v not in split.ct_args]
    for u in stored_operands:
        if u not in bwd_in:
            bwd_in.append(u)
    fwd_in = _needed(fwd_ops, outs)
    # Residuals: computed per step by the forward step, read by the backward.
    res_vals = [v for v in bwd_in if split.defined_by(v) == "fwd"]
    res_carries = [v for v in bwd_in if v in c_args]
    res_xs = [v for v in bwd_in if v in x_args]
    inv_fwd = [v for v in fwd_in if is_inv(v) and not is_cheap(v)]
    inv_bwd = [v for v in bwd_in if is_inv(v) and not is_cheap(v)]

    # The forward step: (c, x, k, hoisted...) -> (c', y, residuals, carries in).
    Fw = ad.new_func(module_op, f"{callee}_scan_fwd",
                     [v.type for v in split.primal_args] + [v.type for v in inv_fwd], op.location)
    fa = list(func_body(Fw).arguments)
    fenv = dict(zip(split.primal_args, fa))
    fenv.update(zip(inv_fwd, fa[len(split.primal_args):]))
    with ir.InsertionPoint(func_body(Fw)), op.location:
        for o in split.ops_of("hoist"):
            if any(r in fwd_in for r in o.results) and not len(o.operands):
                clone_with_remap(o, fenv)
        for o in fwd_ops:
            clone_with_remap(o, fenv)
    ad.finish_func(Fw, [fenv[v] for v in outs] + [fenv[v] for v in res_vals]
                   + [fenv[v] for v in res_carries])
    with op.location:
        new = _emit_scan(func_name(Fw), [env[v] for v in init], [env[v] for v in xs],
                         [env[v] for v in consts] + [hoist_env[v] for v in inv_fwd],
                         length, reverse,
                         out_types[n_c:] + [v.type for v in res_vals + res_carries])
    for r, nv in zip(op.results, new[:n_c + n_y]):
        env[r] = nv
    stacked = new[n_c + n_y:]

    # The backward step: (ct_c, acc | res_t, carry_t, x_t, ct_y_t | k, hoisted)
    #                 -> (ct_c_prev, acc + ct_k, ct_x_t, stacked term operands).
    acc_js = [j for j in k_active if rest[j]]
    acc_types = [k_args[j].type for j in acc_js]
    b_types = ([v.type for v in ct_c] + acc_types
               + [v.type for v in res_vals + res_carries + res_xs] + [v.type for v in ct_y]
               + [v.type for v in k_args] + [v.type for v in inv_bwd])
    B = ad.new_func(module_op, f"{callee}_scan_bwd", b_types, op.location)
    ba = list(func_body(B).arguments)
    benv, pos = {}, 0
    for v in ct_c:
        benv[v], pos = ba[pos], pos + 1
    accs, pos = ba[pos:pos + len(acc_js)], pos + len(acc_js)
    for v in res_vals + res_carries + res_xs + ct_y + k_args + inv_bwd:
        benv[v], pos = ba[pos], pos + 1
    with ir.InsertionPoint(func_body(B)), op.location:
        for o in split.ops_of("hoist"):
            if any(r in bwd_in for r in o.results) and not len(o.operands):
                clone_with_remap(o, benv)
        for o in bwd_ops:
            clone_with_remap(o, benv)
        b_results = [benv[v] for v in arg_cts[:n_c]]
        for a, j in zip(accs, acc_js):
            total = a
            for r in rest[j]:
                total = ad.add(total, benv[r])
            b_results.append(total)
        b_results += [benv[v] for v in ct_x_vals]
        b_results += [benv[v] for v in extra_y]
    ad.finish_func(B, b_results)

    # Where each term operand's stacked values will be.
    stored = res_vals + res_carries

    def source(u):
        if u in stored:
            return ("res", stored.index(u))
        if u in x_args:
            return ("x", x_args.index(u))
        if u in ct_y:
            return ("cty", ct_y.index(u))
        if u in ct_x_vals:
            return ("ys", ct_x_vals.index(u))
        return ("ys", len(ct_x_vals) + extra_y.index(u))
    post = {j: [(t[0], source(t[1]), t[2], source(t[3])) if t[0] == "mm"
                else (t[0], source(t[1]), t[2], shape_of(arg_cts[n_c + n_x + j]))
                for t in terms[j]] for j in k_active}
    per_step_b = sum(_nbytes(v.type) for v in res_vals + res_carries)
    names = ", ".join(f"{'x'.join(map(str, shape_of(v))) or 'scalar'} {element_type(v)}"
                      for v in res_vals + res_carries) or "none"
    info = {"B": func_name(B), "stacked": stacked,
            "res_xs": [x_args.index(v) for v in res_xs],
            "inv_bwd": [hoist_env[v] for v in inv_bwd], "k_active": k_active,
            "acc_js": acc_js, "post": post,
            "x_active": x_active, "y_types": [v.type for v in ct_x_vals + extra_y]}
    F.erase()   # nothing of F may be touched after this
    n_post = sum(len(t) for t in post.values())
    ad.record(module_op, f"{loc_where(op.location)}: scan of @{callee} ({length} steps"
              f"{', recomputed in the backward sweep' if remat else ''}): residuals per step {per_step_b} B ({names}), {length * per_step_b} B stacked; "
              f"{len(inv_fwd) + len(inv_bwd)} loop-invariant value(s) computed once"
              + (f"; {n_post} weight-cotangent term(s) summed after the loop"
                 if n_post else ""))
    return info


def backward(module_op, op: ir.Operation, env, cts, active, info) -> None:
    """Backward sweep of ``ad.scan``: one scan of the backward step, in the
    opposite direction; add the cotangents of init, xs and consts (the
    stacked terms of a const's cotangent after the loop)."""
    n_c, n_x, n_k, init, xs, consts = _segments(op)
    length, reverse, _ = _attrs(op)
    results = list(op.results)
    ct_c = [g if (g := cts.get(r, env[r])) is not None else ad.zeros_like(env[r])
            for r in results[:n_c]]
    ct_y = [g if (g := cts.get(r, env[r])) is not None else ad.zeros_like(env[r])
            for r in results[n_c:]]
    accs = [ad.zeros_like(env[consts[j]]) for j in info["acc_js"]]
    x_res = [env[xs[j]] for j in info["res_xs"]]
    new = _emit_scan(info["B"], ct_c + accs, info["stacked"] + x_res + ct_y,
                     [env[v] for v in consts] + info["inv_bwd"], length, not reverse,
                     info["y_types"])
    ct_init = new[:n_c]
    ct_acc = dict(zip(info["acc_js"], new[n_c:n_c + len(accs)]))
    ys = new[n_c + len(accs):]
    ct_xs = ys[:len(info["x_active"])]

    def stacked(src):
        kind, i = src
        return {"res": lambda: info["stacked"][i], "x": lambda: env[xs[i]],
                "cty": lambda: ct_y[i], "ys": lambda: ys[i]}[kind]()

    for v, g in zip(init, ct_init):
        if v in active:
            cts.add(v, g)
    for j in info["k_active"]:
        total = ct_acc.get(j)
        for kind, a_src, a_t, b_src in info["post"][j]:
            if kind == "mm":
                term = _stacked_matmul(stacked(a_src), a_t, stacked(b_src))
            else:
                term = _stacked_sum(stacked(a_src), a_t, b_src)
            total = ad.add(total, term)
        cts.add(consts[j], total if total is not None else ad.zeros_like(env[consts[j]]))
    for j, g in zip(info["x_active"], ct_xs):
        cts.add(xs[j], g)

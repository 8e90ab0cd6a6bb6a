# RUN: %PYTHON %s | FileCheck %s
#
# Frontend lit test (Catalyst style): the LSTM cell's jit(vjp), and the same
# gradient through the ChainRules-style rule built on frule_via_ad, each
# compile to ONE pointwise region after the AD passes: it reads the gate
# slices of G, c and the cotangents, and yields outputs and input cotangents.
import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule import rules
from ferrule.nn import sigmoid


def cell(G, c):
    i, f, g, o = fnp.split(G, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


def builtin(G, c, dh, dc):
    (h, c2), pb = ferrule.vjp(cell, G, c)
    return (h, c2, *pb((dh, dc)))


@rules.primitive
def gates(i, f, g, o, c):
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


@rules.rrule(gates)
def gates_rrule(config, i, f, g, o, c):
    if not isinstance(config, rules.HasForwardsMode):
        return rules.opt_out()
    xs = (i, f, g, o, c)
    one = [fnp.ones_like(x) for x in xs]
    dirs = [(rules.NoTangent(), *[one[j] if j == k else rules.ZeroTangent() for j in range(5)])
            for k in range(5)]
    (h, c2), yd = rules.frule_via_ad(config, dirs, gates, *xs)
    return (h, c2), lambda ybar: (rules.NoTangent(),
                                  *[ybar[0] * yd[k][0] + ybar[1] * yd[k][1] for k in range(5)])


def with_rule(G, c, dh, dc):
    def cell_rule(G, c):
        return gates(*fnp.split(G, 4, axis=1), c)
    (h, c2), pb = ferrule.vjp(cell_rule, G, c)
    return (h, c2, *pb((dh, dc)))


G = np.zeros((4, 32), np.float32)
c = np.zeros((4, 8), np.float32)
for f in (builtin, with_rule):
    low = ferrule.jit(f).lower(G, c, c, c)
    print(f"TEST: {f.__name__}")
    print(low.as_text("traced").count('"ad.frule_via_ad"'), "frule_via_ad op(s) traced")
    print(low.as_text("ad"))

# CHECK-LABEL: TEST: builtin
# CHECK: 0 frule_via_ad op(s) traced
# CHECK: func.func @builtin(%arg0: tensor<4x32xf32>, %arg1: tensor<4x8xf32>, %arg2: tensor<4x8xf32>, %arg3: tensor<4x8xf32>)
# CHECK-COUNT-4: tensor.extract_slice %arg0
# CHECK-NOT: linalg.generic
# CHECK: linalg.generic
# CHECK-SAME: iterator_types = ["parallel", "parallel"]
# CHECK-SAME: ins(%{{.+}} : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>)
# CHECK: math.tanh
# CHECK: linalg.yield
# CHECK-NOT: linalg.generic
# CHECK-COUNT-4: tensor.insert_slice
# CHECK-NOT: linalg.generic
# CHECK: return

# vjp inside jit traces the primal twice — inline for the outputs, and as the
# ad.vjp callee for the pullback — so the rule is traced twice; after
# inlining, CSE leaves one region.
# CHECK-LABEL: TEST: with_rule
# CHECK: 2 frule_via_ad op(s) traced
# CHECK: func.func @with_rule(
# CHECK-NOT: linalg.generic
# CHECK: linalg.generic
# CHECK-SAME: iterator_types = ["parallel", "parallel"]
# CHECK-SAME: ins(%{{.+}} : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>)
# CHECK: linalg.yield
# CHECK-NOT: linalg.generic
# CHECK: return

# RUN: %PYTHON %s | FileCheck %s
#
# Frontend lit test (Catalyst style): the LSTM cell's jit(vjp), and the same
# gradient through the ChainRules-style rule built on frule_via_ad, each
# compile to ONE pointwise region after the AD passes: it reads the gate
# slices of G, c and the cotangents, and yields outputs and input cotangents.
# The cell and the rule are tests/models.py's (lstm_fb; lstm_pointwise and
# its rrule), the ones the pytest suites check numerically.
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import ferrule  # noqa: E402
import ferrule.numpy as fnp  # noqa: E402
from models import lstm_fb as builtin, lstm_pointwise  # noqa: E402


def with_rule(G, c, dh, dc):
    def cell_rule(G, c):
        return lstm_pointwise(*fnp.split(G, 4, axis=1), c)
    (h, c2), pb = ferrule.vjp(cell_rule, G, c)
    return (h, c2, *pb((dh, dc)))


G = np.zeros((4, 32), np.float32)
c = np.zeros((4, 8), np.float32)
for name, f in (("builtin", builtin), ("with_rule", with_rule)):
    low = ferrule.jit(f).lower(G, c, c, c)
    print(f"TEST: {name}")
    print(low.as_text("traced").count('"ad.frule_via_ad"'), "frule_via_ad op(s) traced")
    print(low.as_text("ad"))

# CHECK-LABEL: TEST: builtin
# CHECK: 0 frule_via_ad op(s) traced
# CHECK: func.func @lstm_fb(%arg0: tensor<4x32xf32>, %arg1: tensor<4x8xf32>, %arg2: tensor<4x8xf32>, %arg3: tensor<4x8xf32>)
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

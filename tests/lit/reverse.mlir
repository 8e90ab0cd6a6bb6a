// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(reverse,lower-ad,inline,symbol-dce,canonicalize,cse,fuse-pointwise,canonicalize)' | FileCheck %s
// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(reverse)' | FileCheck %s --check-prefix=RULES
// RUN: not ferrule-opt %S/Inputs/callback-grad.mlir --pass-pipeline='builtin.module(reverse)' 2>&1 | FileCheck %s --check-prefix=CALLBACK
// CALLBACK: callback-grad.mlir:4:{{[0-9]+}}: error: reverse: pure_callback 'gammaln' (at {{.+}}:4) is not differentiable: ferrule cannot see into host code, so reverse mode has no derivative for it
// RUN: not ferrule-opt %S/Inputs/nonlinear-frule.mlir --pass-pipeline='builtin.module(reverse)' 2>&1 | FileCheck %s --check-prefix=NONLIN
// NONLIN: nonlinear-frule.mlir:14:{{[0-9]+}}: error: reverse: @sq (called at {{.+}}:14) has an frule, sq_frule, but no rrule, so reverse mode transposes the frule's tangent map; it cannot: the map must be linear in the tangents, and at {{.+}}:10 it multiplies a tangent by a tangent

// The backward region of a two-input pointwise region: it reads the inputs
// and the cotangent, recomputes the primal, and writes both input cotangents
// (nothing else is kept between the sweeps).
// CHECK-LABEL: func.func @two_inputs
// CHECK: %[[R:.+]]:3 = linalg.generic
// CHECK-SAME: ins(%arg0, %arg1, %arg2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
// CHECK: math.exp
// CHECK: linalg.yield
// CHECK-NOT: linalg.generic
func.func private @g(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %p = arith.mulf %a, %b : tensor<4xf32>
  %e = math.exp %p : tensor<4xf32>
  return %e : tensor<4xf32>
}
func.func @two_inputs(%a: tensor<4xf32>, %b: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %0:3 = "ad.vjp"(%a, %b, %ct) {callee = @g, operandSegmentSizes = array<i32: 2, 1>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1, %0#2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// matmul's reverse rule: dA = dC * B^T, dB = A^T * dC.
// CHECK-LABEL: func.func @mm
// CHECK-DAG: linalg.matmul ins(%arg2, %{{.+}} : tensor<2x4xf32>, tensor<4x3xf32>)
// CHECK-DAG: linalg.matmul ins(%{{.+}}, %arg2 : tensor<3x2xf32>, tensor<2x4xf32>)
func.func private @mmf(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %z = arith.constant dense<0.0> : tensor<2x4xf32>
  %c = linalg.matmul ins(%a, %b : tensor<2x3xf32>, tensor<3x4xf32>) outs(%z : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %c : tensor<2x4xf32>
}
func.func @mm(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>, %ct: tensor<2x4xf32>) -> (tensor<2x3xf32>, tensor<3x4xf32>) {
  %0:3 = "ad.vjp"(%a, %b, %ct) {callee = @mmf, operandSegmentSizes = array<i32: 2, 1>} : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x3xf32>, tensor<3x4xf32>)
  return %0#1, %0#2 : tensor<2x3xf32>, tensor<3x4xf32>
}

// -----

// An input that does not influence the output gets zeros, and no work.
// CHECK-LABEL: func.func @unused
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : tensor<4xf32>
// CHECK-NOT: linalg.generic
// CHECK: return %[[Z]]
func.func private @h(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %e = math.exp %a : tensor<4xf32>
  return %e : tensor<4xf32>
}
func.func @unused(%a: tensor<4xf32>, %b: tensor<4xf32>, %ct: tensor<4xf32>) -> tensor<4xf32> {
  %0:3 = "ad.vjp"(%a, %b, %ct) {callee = @h, operandSegmentSizes = array<i32: 2, 1>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %0#2 : tensor<4xf32>
}

// -----

// Storing partials (reverse{strategy=store}): the forward region also writes
// d exp(a*b)/da and d exp(a*b)/db; the backward region only multiplies by the
// cotangent. The choice is recorded on the module.
// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(reverse{strategy=store})' | FileCheck %s --check-prefix=STORE
// STORE: module attributes {ferrule.pullbacks = ["{{.*}}: pointwise pullback of @gs: store (recompute re-reads 32 B, storing partials moves 64 B)"]}
// STORE-LABEL: func.func private @gs_vjp
// STORE: %[[F:.+]]:3 = linalg.generic
// STORE: math.exp
// STORE: linalg.yield
// STORE: linalg.generic
// STORE-SAME: ins(%arg2, %[[F]]#1, %[[F]]#2 :
// STORE: arith.mulf
// STORE-NOT: math.exp
// STORE: linalg.yield
func.func private @gs(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %p = arith.mulf %a, %b : tensor<4xf32>
  %e = math.exp %p : tensor<4xf32>
  return %e : tensor<4xf32>
}
func.func @stored(%a: tensor<4xf32>, %b: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:3 = "ad.vjp"(%a, %b, %ct) {callee = @gs, operandSegmentSizes = array<i32: 2, 1>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %0#1, %0#2 : tensor<4xf32>, tensor<4xf32>
}

// -----

// Reverse mode of a scan: a forward scan of the step that also stacks what
// the backward needs (the tanh's result, kept because the step's pullbacks
// keep expensive results: the backward reads 1 - t^2 instead of evaluating
// tanh again; and the carry entering each step), then a backward scan in the other
// direction whose carry is the carry's cotangent and which stacks each
// step's dG. The weight's cotangent, a sum over the steps of h^T dG, is one
// matmul after the loop of the stacked carries (transposed) and dGs. The
// transposed weight (dh = dG @ W^T) depends on the weight alone: it is
// computed once, outside both loops.
// CHECK-LABEL: func.func private @rnn_vjp
// CHECK: %[[WT:.+]] = linalg.generic
// CHECK: %[[F:.+]]:4 = "ad.scan"(%arg0, %arg1, %arg2) {callee = @step_scan_fwd, length = 5 : i64
// CHECK-SAME: reverse = 0 : i64
// CHECK-SAME: -> (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<5x4x8xf32>, tensor<5x4x8xf32>)
// CHECK: %[[B:.+]]:3 = "ad.scan"({{.+}}, %[[F]]#2, %[[F]]#3, {{.+}}, %arg2, %[[WT]]) {callee = @step_scan_bwd, length = 5 : i64
// CHECK-SAME: reverse = 1 : i64
// CHECK: %[[H:.+]] = tensor.collapse_shape %[[F]]#3 {{\[}}[0, 1], [2]] : tensor<5x4x8xf32> into tensor<20x8xf32>
// CHECK: %[[HT:.+]] = linalg.generic {{.*}} ins(%[[H]] : tensor<20x8xf32>)
// CHECK: %[[DG:.+]] = tensor.collapse_shape %[[B]]#2
// CHECK: linalg.matmul ins(%[[HT]], %[[DG]] : tensor<8x20xf32>, tensor<20x8xf32>)
// CHECK-LABEL: func.func private @step_scan_fwd
// CHECK: linalg.matmul
// CHECK: math.tanh
// CHECK-LABEL: func.func private @step_scan_bwd
// CHECK-NOT: math.tanh
// CHECK: linalg.matmul
// CHECK-NOT: linalg.matmul
// CHECK: return
func.func private @step(%h: tensor<4x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x8xf32>
  %m = linalg.matmul ins(%h, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %a = arith.addf %m, %x : tensor<4x8xf32>
  %t = math.tanh %a : tensor<4x8xf32>
  return %t, %t : tensor<4x8xf32>, tensor<4x8xf32>
}
func.func private @rnn(%h0: tensor<4x8xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<8x8xf32>) -> tensor<5x4x8xf32> {
  %r:2 = "ad.scan"(%h0, %xs, %w) {callee = @step, length = 5 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<5x4x8xf32>)
  return %r#1 : tensor<5x4x8xf32>
}
func.func @rnn_grad(%h0: tensor<4x8xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<8x8xf32>, %ct: tensor<5x4x8xf32>) -> (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>) {
  %0:4 = "ad.vjp"(%h0, %xs, %w, %ct) {callee = @rnn, operandSegmentSizes = array<i32: 3, 1>} : (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>, tensor<5x4x8xf32>) -> (tensor<5x4x8xf32>, tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>)
  return %0#1, %0#2, %0#3 : tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>
}

// -----

// A primitive with only an frule under reverse mode: the pullback is the
// transpose of the frule's tangent map (3 x^2 dx), built as the VJP of
// @cube_frule's tangent outputs with respect to its tangent inputs. After
// inlining and fusion: one region computing 3 x^2 ct, and the primal's own
// code (x*x*x) is not differentiated. Before inlining (RULES): the forward
// sweep keeps the custom_frule op (for a second derivative), the backward
// sweep calls the transpose with a zero tangent; the choice is recorded.
// CHECK-LABEL: func.func @grad_cube
// CHECK: linalg.generic
// CHECK: ^bb0(%[[X:.+]]: f32, %[[CT:.+]]: f32,
// CHECK: arith.mulf %[[X]], %[[X]]
// CHECK: arith.mulf
// CHECK: arith.mulf {{.+}}%[[CT]]
// CHECK-NOT: linalg.generic
// RULES: ferrule.rules = ["{{.+}}:{{[0-9]+}} | @cube | reverse | cube_frule | transposed (its tangent map is linear)"]
// RULES-LABEL: func.func private @uses_cube_vjp
// RULES: "ad.custom_frule"(%arg0)
// RULES: %[[Z:.+]] = arith.constant dense<0.000000e+00>
// RULES: %[[T:.+]]:3 = call @cube_frule_tangents_vjp(%arg0, %[[Z]], %arg1)
// RULES: return %{{.+}}, %[[T]]#2
func.func private @cube(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  %1 = arith.mulf %0, %x : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @cube_frule(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  %1 = arith.mulf %0, %x : tensor<4xf32>
  %three = arith.constant dense<3.0> : tensor<4xf32>
  %2 = arith.mulf %three, %0 : tensor<4xf32>
  %3 = arith.mulf %2, %dx : tensor<4xf32>
  return %1, %3 : tensor<4xf32>, tensor<4xf32>
}
func.func private @uses_cube(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_frule"(%x) {callee = @cube, frule = @cube_frule, rule = "cube_frule"} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @grad_cube(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> tensor<4xf32> {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @uses_cube, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#1 : tensor<4xf32>
}

// -----

// A custom rrule in reverse mode: its pullback is called in the backward
// sweep, and the op itself stays in the forward sweep (residuals are its
// arguments), so a second derivative of this code reaches the rule again.
// After lowering and fusion: one region computing x*x and 2x*ct.
// CHECK-LABEL: func.func @grad_sq
// CHECK: linalg.generic
// CHECK: arith.mulf %in, %in
// CHECK: linalg.yield
// RULES: ferrule.rules = ["{{.+}}:{{[0-9]+}} | @sq | reverse | sq_rrule | its pullback"]
// RULES-LABEL: func.func private @uses_sq_vjp
// RULES: %[[Y:.+]] = "ad.custom_rrule"(%arg0) {callee = @sq
// RULES: %[[G:.+]] = call @sq_pb(%arg0, %arg1)
// RULES: return %[[Y]], %[[G]]
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @sq_pb(%x: tensor<4xf32>, %g: tensor<4xf32>) -> tensor<4xf32> {
  %two = arith.constant dense<2.0> : tensor<4xf32>
  %0 = arith.mulf %two, %x : tensor<4xf32>
  %1 = arith.mulf %0, %g : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @uses_sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @sq, forward = @sq_fwd, pullback = @sq_pb, rule = "sq_rrule", num_residuals = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @grad_sq(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @uses_sq, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(reverse,inline,symbol-dce,canonicalize,cse,fuse-pointwise,canonicalize)' | FileCheck %s

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
// the backward needs (the matmul's output and the carry entering each step:
// the pointwise tanh is recomputed), then a backward scan in the other
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
// CHECK-NOT: func.func
// CHECK: math.tanh
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

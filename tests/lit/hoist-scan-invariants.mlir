// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(hoist-scan-invariants)' | FileCheck %s

// Work on the consts alone (%w * %w, then its exp) runs once before the
// scan; the step gets the value its remaining ops read (%e) as an extra
// const. The constant stays in the step (cheap, never passed); the
// func.call on a const is not moved (it may call host code).
// CHECK-LABEL: func.func @caller
// CHECK: %[[SQ:.+]] = arith.mulf %arg2, %arg2 : tensor<4xf32>
// CHECK: %[[E:.+]] = math.exp %[[SQ]] : tensor<4xf32>
// CHECK: "ad.scan"(%arg0, %arg1, %arg2, %[[E]]) {callee = @step_hoisted, {{.*}}operandSegmentSizes = array<i32: 1, 1, 2>
// CHECK-NOT: @step(
// CHECK: func.func private @step_hoisted(%[[H:[a-z0-9]+]]: tensor<4xf32>, %[[X:[a-z0-9]+]]: tensor<4xf32>, %[[W:[a-z0-9]+]]: tensor<4xf32>, %[[EA:[a-z0-9]+]]: tensor<4xf32>)
// CHECK-NOT: arith.mulf %[[W]], %[[W]]
// CHECK: arith.constant dense<2.000000e+00>
// CHECK: call @opaque(%[[W]])
// CHECK: arith.addf %[[H]], %[[EA]]
func.func private @opaque(tensor<4xf32>) -> tensor<4xf32>
func.func private @step(%h: tensor<4xf32>, %x: tensor<4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %two = arith.constant dense<2.0> : tensor<4xf32>
  %sq = arith.mulf %w, %w : tensor<4xf32>
  %e = math.exp %sq : tensor<4xf32>
  %o = func.call @opaque(%w) : (tensor<4xf32>) -> tensor<4xf32>
  %a = arith.addf %h, %e : tensor<4xf32>
  %b = arith.mulf %a, %x : tensor<4xf32>
  %c = arith.mulf %b, %two : tensor<4xf32>
  %d = arith.addf %c, %o : tensor<4xf32>
  return %d, %d : tensor<4xf32>, tensor<4xf32>
}
func.func @caller(%h0: tensor<4xf32>, %xs: tensor<3x4xf32>, %w: tensor<4xf32>) -> (tensor<4xf32>, tensor<3x4xf32>) {
  %r:2 = "ad.scan"(%h0, %xs, %w) {callee = @step, length = 3 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4xf32>, tensor<3x4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<3x4xf32>)
  return %r#0, %r#1 : tensor<4xf32>, tensor<3x4xf32>
}

// -----

// A step two scans share is left alone (hoisting would change it for both).
// CHECK-LABEL: func.func private @inc
// CHECK: arith.mulf
// CHECK-LABEL: func.func @shared
// CHECK-COUNT-2: callee = @inc,
func.func private @inc(%c: tensor<2xf32>, %w: tensor<2xf32>) -> (tensor<2xf32>) {
  %sq = arith.mulf %w, %w : tensor<2xf32>
  %s = arith.addf %c, %sq : tensor<2xf32>
  return %s : tensor<2xf32>
}
func.func @shared(%c0: tensor<2xf32>, %w: tensor<2xf32>) -> tensor<2xf32> {
  %a = "ad.scan"(%c0, %w) {callee = @inc, length = 2 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 0, 1>} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %b = "ad.scan"(%a, %w) {callee = @inc, length = 2 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 0, 1>} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %b : tensor<2xf32>
}

// -----

// Only operand-free ops (constants) are invariant: nothing is moved.
// CHECK-NOT: plain_hoisted
// CHECK-LABEL: func.func @nothing
// CHECK: callee = @plain,
// CHECK-NOT: plain_hoisted
func.func private @plain(%c: tensor<2xf32>, %w: tensor<2xf32>) -> (tensor<2xf32>) {
  %one = arith.constant dense<1.0> : tensor<2xf32>
  %s = arith.addf %c, %one : tensor<2xf32>
  %t = arith.addf %s, %w : tensor<2xf32>
  return %t : tensor<2xf32>
}
func.func @nothing(%c0: tensor<2xf32>, %w: tensor<2xf32>) -> tensor<2xf32> {
  %a = "ad.scan"(%c0, %w) {callee = @plain, length = 2 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 0, 1>} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  return %a : tensor<2xf32>
}

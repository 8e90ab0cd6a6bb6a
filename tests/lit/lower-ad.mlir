// RUN: ferrule-opt %s --pass-pipeline='builtin.module(lower-ad)' | FileCheck %s
// RUN: ferrule-opt %s --pass-pipeline='builtin.module(lower-ad)' | FileCheck %s --check-prefix=CB
// RUN: not ferrule-opt %S/Inputs/leftover-vjp.mlir --pass-pipeline='builtin.module(lower-ad)' 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: leftover-vjp.mlir:6:{{[0-9]+}}: error: lower-ad: 'ad.vjp' was not lowered; run the forward and reverse passes first

// A custom_rrule outside differentiated code is a plain call of its primal.
// CHECK-LABEL: func.func @plain
// CHECK: %[[R:.+]] = call @sq(%arg0)
// CHECK-NOT: ad.
// CHECK: return %[[R]]
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @sq_pb(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %ct : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @plain(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @sq, forward = @sq_fwd, pullback = @sq_pb, rule = "sq_rrule", num_residuals = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// A host callback becomes a call of its external function on tensors
// (declared once, private); lower-callbacks moves it onto buffers later.
// CB: func.func private @__ferrule_callback_7(tensor<4xf32>) -> tensor<4xf32>
// CB-NOT: @__ferrule_callback_7(tensor
// CB-LABEL: func.func @with_callback
// CB: %[[A:.+]] = call @__ferrule_callback_7(%arg0) : (tensor<4xf32>) -> tensor<4xf32>
// CB: %[[B:.+]] = call @__ferrule_callback_7(%[[A]])
// CB: return %[[B]]
func.func @with_callback(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.pure_callback"(%x) {callback = 7 : i64, name = "host"} : (tensor<4xf32>) -> tensor<4xf32>
  %1 = "ad.pure_callback"(%0) {callback = 7 : i64, name = "host"} : (tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}

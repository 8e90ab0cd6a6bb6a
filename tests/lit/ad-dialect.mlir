// RUN: ferrule-opt %s --split-input-file | FileCheck %s
// RUN: not ferrule-opt %S/Inputs/bad-ad-op.mlir 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: bad-ad-op.mlir:3:{{[0-9]+}}: error: unregistered operation 'ad.bogus'
// RUN: not ferrule-opt %S/Inputs/bad-ad-types.mlir 2>&1 | FileCheck %s --check-prefix=TYPES
// TYPES: bad-ad-types.mlir:6:{{[0-9]+}}: error: 'ad.vjp' operand types (tensor<4xf32>, tensor<f32>) do not match @sq's signature, which needs (tensor<4xf32>, tensor<4xf32>)
// RUN: not ferrule-opt %S/Inputs/bad-scan-types.mlir 2>&1 | FileCheck %s --check-prefix=SCAN
// SCAN: bad-scan-types.mlir:6:{{[0-9]+}}: error: 'ad.scan' operand types (tensor<4xf32>, tensor<3x4xf32>) do not match @step's signature, which needs (tensor<4xf32>, tensor<5x4xf32>)
// RUN: not ferrule-opt %S/Inputs/bad-gather-types.mlir 2>&1 | FileCheck %s --check-prefix=GATHER
// GATHER: bad-gather-types.mlir:3:{{[0-9]+}}: error: 'ad.gather' result type tensor<4x5xf32> does not match: gathering tensor<5x3xf32> at tensor<4xi32> along axis 0 gives tensor<4x3xf32>

// Every `ad` op round-trips through the IRDL-defined dialect (generic form).

// CHECK-LABEL: func.func @uses_jvp
// CHECK: "ad.jvp"(%arg0, %arg1) {callee = @sq, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>}
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @uses_jvp(%x: tensor<4xf32>, %t: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %t) {callee = @sq, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @uses_vjp
// CHECK: "ad.vjp"(%arg0, %arg1) {callee = @sq2, operandSegmentSizes = array<i32: 1, 1>}
func.func private @sq2(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @uses_vjp(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @sq2, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @uses_frule_via_ad
// CHECK: "ad.frule_via_ad"(%arg0, %arg1, %arg2) {callee = @sq3, num_directions = 2 : i64, operandSegmentSizes = array<i32: 1, 2>}
func.func private @sq3(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @uses_frule_via_ad(%x: tensor<4xf32>, %t0: tensor<4xf32>, %t1: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %0:3 = "ad.frule_via_ad"(%x, %t0, %t1) {callee = @sq3, num_directions = 2 : i64, operandSegmentSizes = array<i32: 1, 2>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1, %0#2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @uses_custom_rrule
// CHECK: "ad.custom_rrule"(%arg0) {callee = @sq4, forward = @sq4_fwd, num_residuals = 1 : i64, pullback = @sq4_pb, rule = "sq4_rrule"}
func.func private @sq4(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq4_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @sq4_pb(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %ct : tensor<4xf32>
  %1 = arith.addf %0, %0 : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func @uses_custom_rrule(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @sq4, forward = @sq4_fwd, pullback = @sq4_pb, rule = "sq4_rrule", num_residuals = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @uses_scan
// CHECK: "ad.scan"(%arg0, %arg1) {callee = @acc, length = 3 : i64, operandSegmentSizes = array<i32: 1, 1, 0>, remat = 0 : i64, reverse = 0 : i64}
func.func private @acc(%c: tensor<2xf32>, %x: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
  %s = arith.addf %c, %x : tensor<2xf32>
  return %s, %s : tensor<2xf32>, tensor<2xf32>
}
func.func @uses_scan(%c: tensor<2xf32>, %xs: tensor<3x2xf32>) -> (tensor<2xf32>, tensor<3x2xf32>) {
  %0:2 = "ad.scan"(%c, %xs) {callee = @acc, length = 3 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<2xf32>, tensor<3x2xf32>) -> (tensor<2xf32>, tensor<3x2xf32>)
  return %0#0, %0#1 : tensor<2xf32>, tensor<3x2xf32>
}

// -----

// CHECK-LABEL: func.func @uses_gather
// CHECK: "ad.gather"(%arg0, %arg1) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi64>) -> tensor<4x3xf32>
// CHECK: "ad.scatter_add"(%arg0, %arg1, %{{.+}}) {axis = 0 : i64}
// CHECK: "ad.stop_gradient"(%{{.+}}) : (tensor<5x3xf32>) -> tensor<5x3xf32>
func.func @uses_gather(%t: tensor<5x3xf32>, %i: tensor<4xi64>) -> tensor<5x3xf32> {
  %0 = "ad.gather"(%t, %i) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi64>) -> tensor<4x3xf32>
  %1 = "ad.scatter_add"(%t, %i, %0) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi64>, tensor<4x3xf32>) -> tensor<5x3xf32>
  %2 = "ad.stop_gradient"(%1) : (tensor<5x3xf32>) -> tensor<5x3xf32>
  return %2 : tensor<5x3xf32>
}

// -----

// A host callback: no callee, a callback number and a name.
// CHECK-LABEL: func.func @uses_callback
// CHECK: "ad.pure_callback"(%arg0, %arg1) {callback = 2 : i64, name = "solve"} : (tensor<3x3xf64>, tensor<3xf64>) -> tensor<3xf64>
func.func @uses_callback(%a: tensor<3x3xf64>, %b: tensor<3xf64>) -> tensor<3xf64> {
  %0 = "ad.pure_callback"(%a, %b) {callback = 2 : i64, name = "solve"} : (tensor<3x3xf64>, tensor<3xf64>) -> tensor<3xf64>
  return %0 : tensor<3xf64>
}

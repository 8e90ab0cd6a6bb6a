// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(forward,reverse,lower-ad,inline,symbol-dce,canonicalize,cse)' | FileCheck %s

// The derivative rules of ad.gather, ad.scatter_add and ad.stop_gradient
// (passes/support/gather_ad.py), in both passes.

// Reverse mode of a gather: the table's cotangent is a scatter-add of the
// output cotangent into zeros; the indices (integers) get a zero.
// (Functions holding ad ops stay calls: the inliner cannot move them;
// lower-gather runs before inline in the real pipeline.)
// CHECK-LABEL: func.func private @g_vjp
// CHECK-DAG: %[[ZI:.+]] = arith.constant dense<0> : tensor<4xi32>
// CHECK-DAG: %[[Z:.+]] = arith.constant dense<0.000000e+00> : tensor<5x3xf32>
// CHECK: %[[P:.+]] = "ad.gather"(%arg0, %arg1)
// CHECK: %[[S:.+]] = "ad.scatter_add"(%[[Z]], %arg1, %arg2) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>) -> tensor<5x3xf32>
// CHECK: return %[[P]], %[[S]], %[[ZI]]
func.func private @g(%t: tensor<5x3xf32>, %i: tensor<4xi32>) -> tensor<4x3xf32> {
  %0 = "ad.gather"(%t, %i) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi32>) -> tensor<4x3xf32>
  return %0 : tensor<4x3xf32>
}
func.func @vjp_gather(%t: tensor<5x3xf32>, %i: tensor<4xi32>, %ct: tensor<4x3xf32>) -> (tensor<5x3xf32>, tensor<4xi32>) {
  %0:3 = "ad.vjp"(%t, %i, %ct) {callee = @g, operandSegmentSizes = array<i32: 2, 1>} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<5x3xf32>, tensor<4xi32>)
  return %0#1, %0#2 : tensor<5x3xf32>, tensor<4xi32>
}

// -----

// Forward mode of a gather: the gather of the table's tangent (the
// indices' tangent, an integer zero, is ignored).
// CHECK-LABEL: func.func private @g1_jvp1
// CHECK: %[[P:.+]] = "ad.gather"(%arg0, %arg1) {axis = 1 : i64}
// CHECK: %[[T:.+]] = "ad.gather"(%arg2, %arg1) {axis = 1 : i64}
// CHECK: return %[[P]], %[[T]]
func.func private @g1(%t: tensor<5x3xf64>, %i: tensor<2xi64>) -> tensor<5x2xf64> {
  %0 = "ad.gather"(%t, %i) {axis = 1 : i64} : (tensor<5x3xf64>, tensor<2xi64>) -> tensor<5x2xf64>
  return %0 : tensor<5x2xf64>
}
func.func @jvp_gather(%t: tensor<5x3xf64>, %i: tensor<2xi64>, %dt: tensor<5x3xf64>, %di: tensor<2xi64>) -> (tensor<5x2xf64>, tensor<5x2xf64>) {
  %0:2 = "ad.jvp"(%t, %i, %dt, %di) {callee = @g1, num_directions = 1 : i64, operandSegmentSizes = array<i32: 2, 2>} : (tensor<5x3xf64>, tensor<2xi64>, tensor<5x3xf64>, tensor<2xi64>) -> (tensor<5x2xf64>, tensor<5x2xf64>)
  return %0#0, %0#1 : tensor<5x2xf64>, tensor<5x2xf64>
}

// -----

// scatter_add is linear in (dest, updates): reverse gives dest the
// cotangent and updates its gather; forward scatter-adds the tangents.
// CHECK-LABEL: func.func private @s_vjp
// CHECK: %[[P:.+]] = "ad.scatter_add"(%arg0, %arg1, %arg2)
// CHECK: %[[G:.+]] = "ad.gather"(%arg3, %arg1) {axis = 0 : i64}
// CHECK: return %[[P]], %arg3, %{{.+}}, %[[G]]
func.func private @s(%d: tensor<5x3xf32>, %i: tensor<4xi32>, %u: tensor<4x3xf32>) -> tensor<5x3xf32> {
  %0 = "ad.scatter_add"(%d, %i, %u) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>) -> tensor<5x3xf32>
  return %0 : tensor<5x3xf32>
}
func.func @vjp_scatter(%d: tensor<5x3xf32>, %i: tensor<4xi32>, %u: tensor<4x3xf32>, %ct: tensor<5x3xf32>) -> (tensor<5x3xf32>, tensor<4x3xf32>) {
  %0:4 = "ad.vjp"(%d, %i, %u, %ct) {callee = @s, operandSegmentSizes = array<i32: 3, 1>} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>, tensor<5x3xf32>) -> (tensor<5x3xf32>, tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>)
  return %0#1, %0#3 : tensor<5x3xf32>, tensor<4x3xf32>
}

// -----

// CHECK-LABEL: func.func private @s1_jvp1
// CHECK: %[[P:.+]] = "ad.scatter_add"(%arg0, %arg1, %arg2)
// CHECK: %[[T:.+]] = "ad.scatter_add"(%arg3, %arg1, %arg4)
// CHECK: return %[[P]], %[[T]]
func.func private @s1(%d: tensor<5x3xf32>, %i: tensor<4xi32>, %u: tensor<4x3xf32>) -> tensor<5x3xf32> {
  %0 = "ad.scatter_add"(%d, %i, %u) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>) -> tensor<5x3xf32>
  return %0 : tensor<5x3xf32>
}
func.func @jvp_scatter(%d: tensor<5x3xf32>, %i: tensor<4xi32>, %u: tensor<4x3xf32>, %dd: tensor<5x3xf32>, %du: tensor<4x3xf32>) -> (tensor<5x3xf32>, tensor<5x3xf32>) {
  %zi = arith.constant dense<0> : tensor<4xi32>
  %0:2 = "ad.jvp"(%d, %i, %u, %dd, %zi, %du) {callee = @s1, num_directions = 1 : i64, operandSegmentSizes = array<i32: 3, 3>} : (tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>, tensor<5x3xf32>, tensor<4xi32>, tensor<4x3xf32>) -> (tensor<5x3xf32>, tensor<5x3xf32>)
  return %0#0, %0#1 : tensor<5x3xf32>, tensor<5x3xf32>
}

// -----

// stop_gradient: x * stop_gradient(x) has derivative stop_gradient(x) = x
// (one product, not two) in both modes; lower-ad removes the op.
// CHECK-LABEL: func.func @stop
// CHECK-NOT: ad.stop_gradient
// CHECK: linalg.generic {{.+}} ins(%arg0, %arg0, %arg1 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
// CHECK-NEXT: ^bb0(%{{.+}}: f32, %[[S:.+]]: f32, %[[CT:.+]]: f32, %{{.+}}: f32):
// CHECK-NEXT: %[[R:.+]] = arith.mulf %[[S]], %[[CT]] : f32
// CHECK-NEXT: linalg.yield %[[R]]
// CHECK: linalg.generic {{.+}} ins(%arg0, %arg0, %arg2 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>)
// CHECK-NEXT: ^bb0(%[[X:.+]]: f32, %[[S2:.+]]: f32, %[[T:.+]]: f32, %{{.+}}: f32, %{{.+}}: f32):
// CHECK-NEXT: arith.mulf %[[X]], %[[S2]] : f32
// CHECK-NEXT: arith.mulf %[[S2]], %[[T]] : f32
// CHECK-NEXT: linalg.yield
func.func private @sg(%x: tensor<3xf32>) -> tensor<3xf32> {
  %s = "ad.stop_gradient"(%x) : (tensor<3xf32>) -> tensor<3xf32>
  %0 = arith.mulf %x, %s : tensor<3xf32>
  return %0 : tensor<3xf32>
}
func.func @stop(%x: tensor<3xf32>, %ct: tensor<3xf32>, %t: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @sg, operandSegmentSizes = array<i32: 1, 1>} : (tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>)
  %1:2 = "ad.jvp"(%x, %t) {callee = @sg, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<3xf32>, tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>)
  return %0#1, %1#1 : tensor<3xf32>, tensor<3xf32>
}

// -----

// An integer result of float inputs (argmax's reduction) gets no tangent
// and asks for no rule; it is inactive in reverse mode.
// CHECK-LABEL: func.func @int_result
// CHECK: %[[Z:.+]] = arith.constant dense<0> : tensor<i64>
// CHECK: %[[R:.+]]:2 = linalg.generic
// CHECK-SAME: iterator_types = ["reduction"]
// CHECK: return %[[R]]#1, %[[Z]] : tensor<i64>, tensor<i64>
func.func private @am(%x: tensor<4xf32>) -> tensor<i64> {
  %m0 = arith.constant dense<0xFF800000> : tensor<f32>
  %i0 = arith.constant dense<0> : tensor<i64>
  %k = arith.constant dense<[0, 1, 2, 3]> : tensor<4xi64>
  %r:2 = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>, affine_map<(d0) -> ()>], iterator_types = ["reduction"]} ins(%x, %k : tensor<4xf32>, tensor<4xi64>) outs(%m0, %i0 : tensor<f32>, tensor<i64>) {
  ^bb0(%v: f32, %j: i64, %m: f32, %b: i64):
    %c = arith.cmpf ogt, %v, %m : f32
    %nm = arith.select %c, %v, %m : f32
    %nb = arith.select %c, %j, %b : i64
    linalg.yield %nm, %nb : f32, i64
  } -> (tensor<f32>, tensor<i64>)
  return %r#1 : tensor<i64>
}
func.func @int_result(%x: tensor<4xf32>, %t: tensor<4xf32>) -> (tensor<i64>, tensor<i64>) {
  %0:2 = "ad.jvp"(%x, %t) {callee = @am, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<i64>, tensor<i64>)
  return %0#0, %0#1 : tensor<i64>, tensor<i64>
}

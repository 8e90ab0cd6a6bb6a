// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(widen-bools)' | FileCheck %s

// A comparison region's bool output is stored as bytes; the scalar i1 is
// widened where it is yielded, and the function returns tensor<...xi8>.
// CHECK-LABEL: func.func @cmp
// CHECK-SAME: -> tensor<4xi8>
// CHECK: linalg.generic
// CHECK: %[[C:.+]] = arith.cmpf ogt
// CHECK: %[[W:.+]] = arith.extui %[[C]] : i1 to i8
// CHECK: linalg.yield %[[W]] : i8
// CHECK: -> tensor<4xi8>
#id = affine_map<(d0) -> (d0)>
func.func @cmp(%x: tensor<4xf32>) -> tensor<4xi1> {
  %e = tensor.empty() : tensor<4xi1>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]} ins(%x : tensor<4xf32>) outs(%e : tensor<4xi1>) {
  ^bb0(%in: f32, %out: i1):
    %z = arith.constant 0.0 : f32
    %c = arith.cmpf ogt, %in, %z : f32
    linalg.yield %c : i1
  } -> tensor<4xi1>
  return %r : tensor<4xi1>
}

// -----

// A bool constant array and a bool argument read by a region: stored as i8,
// narrowed back to i1 inside the body.
// CHECK-LABEL: func.func @select
// CHECK-SAME: %arg0: tensor<4xi8>
// CHECK: arith.constant dense<[1, 0, 1, 0]> : tensor<4xi8>
// CHECK: ^bb0(%[[M:.+]]: i8, %[[B:.+]]: i8, %{{.+}}: f32, %{{.+}}: f32):
// CHECK-DAG: arith.trunci %[[M]] : i8 to i1
// CHECK-DAG: arith.trunci %[[B]] : i8 to i1
#id2 = affine_map<(d0) -> (d0)>
func.func @select(%b: tensor<4xi1>, %x: tensor<4xf32>) -> tensor<4xf32> {
  %m = arith.constant dense<[true, false, true, false]> : tensor<4xi1>
  %e = tensor.empty() : tensor<4xf32>
  %r = linalg.generic {indexing_maps = [#id2, #id2, #id2, #id2], iterator_types = ["parallel"]} ins(%m, %b, %x : tensor<4xi1>, tensor<4xi1>, tensor<4xf32>) outs(%e : tensor<4xf32>) {
  ^bb0(%mi: i1, %bi: i1, %xi: f32, %out: f32):
    %both = arith.andi %mi, %bi : i1
    %n = arith.negf %xi : f32
    %s = arith.select %both, %xi, %n : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}

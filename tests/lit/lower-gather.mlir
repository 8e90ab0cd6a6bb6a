// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(lower-gather)' | FileCheck %s

// A gather along axis 1 of a 4x5 table at 2x3 indices: one generic over the
// 4x2x3x... result that reads the index through its map, wraps a negative
// index (+5), clamps it to [0, 4], and reads the table with tensor.extract
// at (loop index 0, the index, loop index 3).
// CHECK-LABEL: func.func @take
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%arg1 : tensor<2x3xi64>) outs(%{{.+}} : tensor<4x2x3x6xf32>)
// CHECK: ^bb0(%[[I:.+]]: i64, %{{.+}}: f32):
// CHECK: %[[K:.+]] = arith.index_cast %[[I]] : i64 to index
// CHECK-DAG: %[[N:.+]] = arith.constant 5 : index
// CHECK-DAG: %[[LAST:.+]] = arith.constant 4 : index
// CHECK: %[[NEG:.+]] = arith.cmpi slt, %[[K]]
// CHECK: %[[W:.+]] = arith.addi %[[K]], %[[N]]
// CHECK: arith.select %[[NEG]], %[[W]], %[[K]]
// CHECK: arith.maxsi
// CHECK: %[[C:.+]] = arith.minsi %{{.+}}, %[[LAST]]
// CHECK-DAG: %[[D0:.+]] = linalg.index 0 : index
// CHECK-DAG: %[[D3:.+]] = linalg.index 3 : index
// CHECK: %[[V:.+]] = tensor.extract %arg0[%[[D0]], %[[C]], %[[D3]]] : tensor<4x5x6xf32>
// CHECK: linalg.yield %[[V]] : f32
// CHECK-NOT: ad.gather
func.func @take(%t: tensor<4x5x6xf32>, %i: tensor<2x3xi64>) -> tensor<4x2x3x6xf32> {
  %0 = "ad.gather"(%t, %i) {axis = 1 : i64} : (tensor<4x5x6xf32>, tensor<2x3xi64>) -> tensor<4x2x3x6xf32>
  return %0 : tensor<4x2x3x6xf32>
}

// -----

// A scatter-add along axis 0 (an embedding's gradient): an scf.for over the
// 3 indices, carrying the accumulator (initially dest); each step reads
// index j, clamps it, and adds row j of the updates into the
// accumulator's row at the index, in place (extract_slice, a generic
// reading its init, insert_slice at the same offsets).
// CHECK-LABEL: func.func @embedding_grad
// CHECK: %[[R:.+]] = scf.for %[[J:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %arg0) -> (tensor<10x8xf32>)
// CHECK: %[[RAW:.+]] = tensor.extract %arg1[%[[J]]] : tensor<3xi32>
// CHECK: arith.index_cast %[[RAW]] : i32 to index
// CHECK: %[[P:.+]] = arith.minsi
// CHECK: %[[U:.+]] = tensor.extract_slice %arg2[%[[J]], 0] [1, 8] [1, 1] : tensor<3x8xf32> to tensor<1x8xf32>
// CHECK: %[[S:.+]] = tensor.extract_slice %[[ACC]][%[[P]], 0] [1, 8] [1, 1] : tensor<10x8xf32> to tensor<1x8xf32>
// CHECK: %[[SUM:.+]] = linalg.generic {{.+}} ins(%[[U]] : tensor<1x8xf32>) outs(%[[S]] : tensor<1x8xf32>)
// CHECK: arith.addf
// CHECK: %[[NEW:.+]] = tensor.insert_slice %[[SUM]] into %[[ACC]][%[[P]], 0] [1, 8] [1, 1]
// CHECK: scf.yield %[[NEW]]
// CHECK: return %[[R]]
// CHECK-NOT: ad.scatter_add
func.func @embedding_grad(%d: tensor<10x8xf32>, %i: tensor<3xi32>, %u: tensor<3x8xf32>) -> tensor<10x8xf32> {
  %0 = "ad.scatter_add"(%d, %i, %u) {axis = 0 : i64} : (tensor<10x8xf32>, tensor<3xi32>, tensor<3x8xf32>) -> tensor<10x8xf32>
  return %0 : tensor<10x8xf32>
}

// -----

// Indices of rank 2 are flattened (the loop runs over 6 positions) and
// the updates' index axes merged; a 0-d index scatters one slice.
// CHECK-LABEL: func.func @ranks
// CHECK: tensor.collapse_shape %arg1 {{\[\[}}0, 1]] : tensor<2x3xi64> into tensor<6xi64>
// CHECK: tensor.collapse_shape %arg2 {{\[\[}}0], [1, 2], [3]] : tensor<4x2x3x5xf64> into tensor<4x6x5xf64>
// CHECK: scf.for
// CHECK: tensor.expand_shape %arg3 [] output_shape [1] : tensor<i64> into tensor<1xi64>
// CHECK: tensor.expand_shape %arg4 {{\[\[}}0], [1, 2]] output_shape [4, 1, 5] : tensor<4x5xf64> into tensor<4x1x5xf64>
// CHECK: scf.for
func.func @ranks(%d: tensor<4x7x5xf64>, %i: tensor<2x3xi64>, %u: tensor<4x2x3x5xf64>, %i0: tensor<i64>, %u0: tensor<4x5xf64>) -> (tensor<4x7x5xf64>, tensor<4x7x5xf64>) {
  %0 = "ad.scatter_add"(%d, %i, %u) {axis = 1 : i64} : (tensor<4x7x5xf64>, tensor<2x3xi64>, tensor<4x2x3x5xf64>) -> tensor<4x7x5xf64>
  %1 = "ad.scatter_add"(%d, %i0, %u0) {axis = 1 : i64} : (tensor<4x7x5xf64>, tensor<i64>, tensor<4x5xf64>) -> tensor<4x7x5xf64>
  return %0, %1 : tensor<4x7x5xf64>, tensor<4x7x5xf64>
}

// -----

// A cotangent accumulated from scatter-adds into zeros (a table read by two
// gathers) becomes a chain of scatter-adds into the first: no zeros of the
// table's size, no addition of them.
// CHECK-LABEL: func.func @accumulate
// CHECK: %[[A:.+]] = scf.for {{.+}} iter_args(%{{.+}} = %arg0)
// CHECK: %[[B:.+]] = scf.for {{.+}} iter_args(%{{.+}} = %[[A]])
// CHECK-NOT: arith.addf %{{.+}} : tensor<10x8xf32>
// CHECK: return %[[B]]
func.func @accumulate(%g: tensor<10x8xf32>, %i: tensor<3xi32>, %u: tensor<3x8xf32>, %j: tensor<2xi32>, %w: tensor<2x8xf32>) -> tensor<10x8xf32> {
  %z = arith.constant dense<0.0> : tensor<10x8xf32>
  %0 = "ad.scatter_add"(%z, %i, %u) {axis = 0 : i64} : (tensor<10x8xf32>, tensor<3xi32>, tensor<3x8xf32>) -> tensor<10x8xf32>
  %1 = arith.addf %g, %0 : tensor<10x8xf32>
  %2 = "ad.scatter_add"(%z, %j, %w) {axis = 0 : i64} : (tensor<10x8xf32>, tensor<2xi32>, tensor<2x8xf32>) -> tensor<10x8xf32>
  %3 = arith.addf %2, %1 : tensor<10x8xf32>
  return %3 : tensor<10x8xf32>
}

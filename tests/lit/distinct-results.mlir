// RUN: ferrule-opt %s --pass-pipeline='builtin.module(distinct-results)' | FileCheck %s

// The second use of %0 and the returned argument become copies.
// CHECK-LABEL: func.func @twice
// CHECK: %[[V:.+]] = arith.mulf
// CHECK: %[[C1:.+]] = bufferization.alloc_tensor() copy(%[[V]])
// CHECK: %[[C2:.+]] = bufferization.alloc_tensor() copy(%arg0)
// CHECK: return %[[V]], %[[C1]], %[[C2]]
func.func @twice(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %0, %x : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

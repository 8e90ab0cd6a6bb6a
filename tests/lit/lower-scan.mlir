// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(lower-scan)' | FileCheck %s

// A scan becomes an scf.for over its length that slices each xs at the
// step's index, calls the step (a function of its own, not inlined: the
// IR does not grow with the length), and inserts each y at that index.
// CHECK-LABEL: func.func @rnn
// CHECK-DAG: %[[C0:.+]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.+]] = arith.constant 1 : index
// CHECK-DAG: %[[C5:.+]] = arith.constant 5 : index
// CHECK: %[[E:.+]] = tensor.empty() : tensor<5x4x8xf32>
// CHECK: %[[R:.+]]:2 = scf.for %[[I:[a-z0-9_]+]] = %[[C0]] to %[[C5]] step %[[C1]] iter_args(%[[H:[a-z0-9_]+]] = %arg0, %[[YS:[a-z0-9_]+]] = %[[E]])
// CHECK: %[[X:.+]] = tensor.extract_slice %arg1[%[[I]], 0, 0] [1, 4, 8] [1, 1, 1] : tensor<5x4x8xf32> to tensor<4x8xf32>
// CHECK: %[[O:.+]]:2 = func.call @step(%[[H]], %[[X]], %arg2)
// CHECK: %[[YS2:.+]] = tensor.insert_slice %[[O]]#1 into %[[YS]][%[[I]], 0, 0] [1, 4, 8] [1, 1, 1]
// CHECK: scf.yield %[[O]]#0, %[[YS2]]
// CHECK: return %[[R]]#0, %[[R]]#1
// CHECK-NOT: ad.scan
func.func private @step(%h: tensor<4x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x8xf32>
  %m = linalg.matmul ins(%h, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %a = arith.addf %m, %x : tensor<4x8xf32>
  %t = math.tanh %a : tensor<4x8xf32>
  return %t, %t : tensor<4x8xf32>, tensor<4x8xf32>
}
func.func @rnn(%h0: tensor<4x8xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<5x4x8xf32>) {
  %r:2 = "ad.scan"(%h0, %xs, %w) {callee = @step, length = 5 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<5x4x8xf32>)
  return %r#0, %r#1 : tensor<4x8xf32>, tensor<5x4x8xf32>
}

// -----

// reverse = 1: step i works on index 4 - i.
// CHECK-LABEL: func.func @backwards
// CHECK-DAG: %[[C4:.+]] = arith.constant 4 : index
// CHECK: scf.for %[[I:[a-z0-9_]+]] =
// CHECK: %[[T:.+]] = arith.subi %[[C4]], %[[I]] : index
// CHECK: tensor.extract_slice %arg1[%[[T]], 0]
// CHECK: tensor.insert_slice %{{.+}} into %{{.+}}[%[[T]], 0]
func.func private @acc(%c: tensor<3xf32>, %x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %s = arith.addf %c, %x : tensor<3xf32>
  return %s, %s : tensor<3xf32>, tensor<3xf32>
}
func.func @backwards(%c0: tensor<3xf32>, %xs: tensor<5x3xf32>) -> (tensor<3xf32>, tensor<5x3xf32>) {
  %r:2 = "ad.scan"(%c0, %xs) {callee = @acc, length = 5 : i64, reverse = 1 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<3xf32>, tensor<5x3xf32>) -> (tensor<3xf32>, tensor<5x3xf32>)
  return %r#0, %r#1 : tensor<3xf32>, tensor<5x3xf32>
}

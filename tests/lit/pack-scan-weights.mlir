// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(pack-scan-weights{lanes-bytes=32})' | FileCheck %s

// The step's h @ W (W a const, 16 x 32: two column panels of 16) reads W
// packed before the scan: Wp[jb, k, l] = W[k, 16 jb + l], a new const of
// the scan and argument of the step, where the matmul becomes the packed
// generic tile-matmul computes. W itself is still passed (the x @ W of the
// second matmul, whose K = 8 < 16, reads it unpacked).
// CHECK-DAG: #[[PACK:.+]] = affine_map<(d0, d1, d2) -> (d1, d0 * 16 + d2)>
// CHECK-DAG: #[[A:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d3)>
// CHECK-DAG: #[[BP:.+]] = affine_map<(d0, d1, d2, d3) -> (d1, d3, d2)>
// CHECK-DAG: #[[C:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 * 16 + d2)>
// CHECK-LABEL: func.func private @step(
// CHECK-SAME: %[[H:[a-z0-9]+]]: tensor<4x16xf32>, %{{.+}}: tensor<4x8xf32>, %[[W:[a-z0-9]+]]: tensor<16x32xf32>, %{{.+}}: tensor<8x32xf32>, %[[WP:[a-z0-9]+]]: tensor<2x16x16xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[A]], #[[BP]], #[[C]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[H]], %[[WP]] : tensor<4x16xf32>, tensor<2x16x16xf32>)
// CHECK-SAME: ferrule.packed_matmul = 16
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: linalg.matmul
// CHECK-LABEL: func.func @rnn
// CHECK: %[[P:.+]] = linalg.generic {indexing_maps = [#[[PACK]], #{{.+}}], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg2 : tensor<16x32xf32>) outs(%{{.+}} : tensor<2x16x16xf32>)
// CHECK: "ad.scan"(%arg0, %arg1, %arg2, %arg3, %[[P]]) {callee = @step
// CHECK-SAME: operandSegmentSizes = array<i32: 1, 1, 3>
func.func private @step(%h: tensor<4x16xf32>, %x: tensor<4x8xf32>, %w: tensor<16x32xf32>, %u: tensor<8x32xf32>) -> (tensor<4x16xf32>, tensor<4x32xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x32xf32>
  %m = linalg.matmul ins(%h, %w : tensor<4x16xf32>, tensor<16x32xf32>) outs(%z : tensor<4x32xf32>) -> tensor<4x32xf32>
  %n = linalg.matmul ins(%x, %u : tensor<4x8xf32>, tensor<8x32xf32>) outs(%m : tensor<4x32xf32>) -> tensor<4x32xf32>
  %t = math.tanh %n : tensor<4x32xf32>
  %h2 = tensor.extract_slice %t[0, 0] [4, 16] [1, 1] : tensor<4x32xf32> to tensor<4x16xf32>
  return %h2, %t : tensor<4x16xf32>, tensor<4x32xf32>
}
func.func @rnn(%h0: tensor<4x16xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<16x32xf32>, %u: tensor<8x32xf32>) -> (tensor<4x16xf32>, tensor<5x4x32xf32>) {
  %r:2 = "ad.scan"(%h0, %xs, %w, %u) {callee = @step, length = 5 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 2>} : (tensor<4x16xf32>, tensor<5x4x8xf32>, tensor<16x32xf32>, tensor<8x32xf32>) -> (tensor<4x16xf32>, tensor<5x4x32xf32>)
  return %r#0, %r#1 : tensor<4x16xf32>, tensor<5x4x32xf32>
}

// -----

// Left alone: B not a const of the step (the carry h), and N = 24 not a
// multiple of 16.
// CHECK-LABEL: func.func private @step2
// CHECK-NOT: ferrule.packed_matmul
// CHECK: linalg.matmul
// CHECK: linalg.matmul
// CHECK-LABEL: func.func @two
// CHECK-NOT: linalg.generic
// CHECK: return
func.func private @step2(%h: tensor<16x16xf32>, %x: tensor<16x16xf32>, %w: tensor<16x24xf32>) -> (tensor<16x16xf32>, tensor<16x24xf32>) {
  %z = arith.constant dense<0.0> : tensor<16x16xf32>
  %z2 = arith.constant dense<0.0> : tensor<16x24xf32>
  %m = linalg.matmul ins(%x, %h : tensor<16x16xf32>, tensor<16x16xf32>) outs(%z : tensor<16x16xf32>) -> tensor<16x16xf32>
  %n = linalg.matmul ins(%h, %w : tensor<16x16xf32>, tensor<16x24xf32>) outs(%z2 : tensor<16x24xf32>) -> tensor<16x24xf32>
  return %m, %n : tensor<16x16xf32>, tensor<16x24xf32>
}
func.func @two(%h0: tensor<16x16xf32>, %xs: tensor<3x16x16xf32>, %w: tensor<16x24xf32>) -> (tensor<16x16xf32>, tensor<3x16x24xf32>) {
  %r:2 = "ad.scan"(%h0, %xs, %w) {callee = @step2, length = 3 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<16x16xf32>, tensor<3x16x16xf32>, tensor<16x24xf32>) -> (tensor<16x16xf32>, tensor<3x16x24xf32>)
  return %r#0, %r#1 : tensor<16x16xf32>, tensor<3x16x24xf32>
}

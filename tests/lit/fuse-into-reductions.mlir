// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(fuse-into-reductions)' | FileCheck %s

// sum over rows of (x * b) with b broadcast along rows: the product moves
// into the reduction; b is read through the composed map (d0, d1) -> (d1)
// of the reduction's loops.
// CHECK-DAG: #[[ID:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[COL:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[ROW:.+]] = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @fused
// CHECK: %[[R:.+]] = linalg.generic {indexing_maps = [#[[ID]], #[[COL]], #[[ROW]]], iterator_types = ["parallel", "reduction"]} ins(%arg0, %arg1 : tensor<4x8xf32>, tensor<8xf32>)
// CHECK-NEXT: ^bb0(%[[X:.+]]: f32, %[[B:.+]]: f32, %[[O:.+]]: f32):
// CHECK-NEXT: %[[P:.+]] = arith.mulf %[[X]], %[[B]] : f32
// CHECK-NEXT: %[[S:.+]] = arith.addf %[[P]], %[[O]] : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
#id = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @fused(%x: tensor<4x8xf32>, %b: tensor<8xf32>, %z: tensor<4xf32>) -> tensor<4xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %p = linalg.generic {indexing_maps = [#id, #col, #id], iterator_types = ["parallel", "parallel"]} ins(%x, %b : tensor<4x8xf32>, tensor<8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%xi: f32, %bi: f32, %o: f32):
    %m = arith.mulf %xi, %bi : f32
    linalg.yield %m : f32
  } -> tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]} ins(%p : tensor<4x8xf32>) outs(%z : tensor<4xf32>) {
  ^bb0(%pi: f32, %o: f32):
    %s = arith.addf %pi, %o : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// Left alone: a producer with a second user (fusing would compute it twice),
// and a producer feeding only pointwise code.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-3: linalg.generic
// CHECK-NOT: linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
func.func @kept(%x: tensor<4x8xf32>, %z: tensor<4xf32>) -> (tensor<4xf32>, tensor<4x8xf32>) {
  %e = tensor.empty() : tensor<4x8xf32>
  %p = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %m = arith.mulf %xi, %xi : f32
    linalg.yield %m : f32
  } -> tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]} ins(%p : tensor<4x8xf32>) outs(%z : tensor<4xf32>) {
  ^bb0(%pi: f32, %o: f32):
    %s = arith.addf %pi, %o : f32
    linalg.yield %s : f32
  } -> tensor<4xf32>
  %q = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%p : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%pi: f32, %o: f32):
    %n = arith.negf %pi : f32
    linalg.yield %n : f32
  } -> tensor<4x8xf32>
  return %r, %q : tensor<4xf32>, tensor<4x8xf32>
}

// -----

// A producer that broadcasts x along d1: only its output indexed d1, so
// fusing it would leave the reduction's d1 loop without a size. Left alone.
// CHECK-LABEL: func.func @broadcast_producer
// CHECK-COUNT-2: linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>
#none = affine_map<(d0, d1) -> ()>
func.func @broadcast_producer(%x: tensor<3xf32>, %z: tensor<f32>) -> tensor<f32> {
  %e = tensor.empty() : tensor<3x4xf32>
  %p = linalg.generic {indexing_maps = [#row, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<3xf32>) outs(%e : tensor<3x4xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %m = arith.mulf %xi, %xi : f32
    linalg.yield %m : f32
  } -> tensor<3x4xf32>
  %r = linalg.generic {indexing_maps = [#id, #none], iterator_types = ["reduction", "reduction"]} ins(%p : tensor<3x4xf32>) outs(%z : tensor<f32>) {
  ^bb0(%pi: f32, %o: f32):
    %s = arith.addf %pi, %o : f32
    linalg.yield %s : f32
  } -> tensor<f32>
  return %r : tensor<f32>
}

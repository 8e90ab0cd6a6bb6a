// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(widen-accumulators)' | FileCheck %s

// A float32 full sum: the splat init becomes an f64 constant, the body adds
// extf(v) in f64 with reassoc, and a pointwise truncf gives the f32 result.
// CHECK-LABEL: func.func @full_sum
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : tensor<f64>
// CHECK: %[[S:.+]] = linalg.generic {{.*}} ins(%arg0 : tensor<8x16xf32>) outs(%[[Z]] : tensor<f64>)
// CHECK: ^bb0(%[[IN:.+]]: f32, %[[OUT:.+]]: f64):
// CHECK: %[[SQ:.+]] = arith.mulf %[[IN]], %[[IN]] : f32
// CHECK: %[[W:.+]] = arith.extf %[[SQ]] : f32 to f64
// CHECK: %[[A:.+]] = arith.addf %[[OUT]], %[[W]] fastmath<reassoc> : f64
// CHECK: linalg.yield %[[A]] : f64
// CHECK: -> tensor<f64>
// CHECK: %[[T:.+]] = linalg.generic {{.*}} ins(%[[S]] : tensor<f64>) outs(%{{.+}} : tensor<f32>)
// CHECK: arith.truncf %{{.+}} : f64 to f32
// CHECK: return %[[T]] : tensor<f32>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#to0 = affine_map<(d0, d1) -> ()>
func.func @full_sum(%x: tensor<8x16xf32>) -> tensor<f32> {
  %z = arith.constant dense<0.0> : tensor<f32>
  %r = linalg.generic {indexing_maps = [#id2, #to0], iterator_types = ["reduction", "reduction"]} ins(%x : tensor<8x16xf32>) outs(%z : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %sq = arith.mulf %in, %in : f32
    %s = arith.addf %sq, %out : f32
    linalg.yield %s : f32
  } -> tensor<f32>
  return %r : tensor<f32>
}

// -----

// An axis-0 sum onto a non-constant init: the init is extended by a
// pointwise extf region.
// CHECK-LABEL: func.func @axis0_sum
// CHECK: %[[E:.+]] = linalg.generic {{.*}} ins(%arg1 : tensor<16xf32>) outs(%{{.+}} : tensor<16xf64>)
// CHECK: arith.extf %{{.+}} : f32 to f64
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]{{.*}} outs(%[[E]] : tensor<16xf64>)
// CHECK: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc> : f64
// CHECK: arith.truncf
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
func.func @axis0_sum(%x: tensor<8x16xf32>, %b: tensor<16xf32>) -> tensor<16xf32> {
  %r = linalg.generic {indexing_maps = [#id2, #col], iterator_types = ["reduction", "parallel"]} ins(%x : tensor<8x16xf32>) outs(%b : tensor<16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %s = arith.addf %out, %in : f32
    linalg.yield %s : f32
  } -> tensor<16xf32>
  return %r : tensor<16xf32>
}

// -----

// Left alone: an f64 sum (only marked reassoc), a max reduction, a sum whose
// body reads the accumulator twice, and a pointwise region.
// CHECK-LABEL: func.func @others
// CHECK: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc> : f64
// CHECK-NOT: arith.extf
// CHECK: arith.maximumf %{{.+}}, %{{.+}} : f32
// CHECK: arith.addf %{{.+}}, %{{.+}} : f32
// CHECK: arith.addf %{{.+}}, %{{.+}} : f32
// CHECK-NOT: arith.truncf
// CHECK: return
#id1 = affine_map<(d0) -> (d0)>
#to0 = affine_map<(d0) -> ()>
func.func @others(%d: tensor<16xf64>, %x: tensor<16xf32>) -> (tensor<f64>, tensor<f32>, tensor<f32>, tensor<16xf32>) {
  %zd = arith.constant dense<0.0> : tensor<f64>
  %zf = arith.constant dense<0.0> : tensor<f32>
  %0 = linalg.generic {indexing_maps = [#id1, #to0], iterator_types = ["reduction"]} ins(%d : tensor<16xf64>) outs(%zd : tensor<f64>) {
  ^bb0(%in: f64, %out: f64):
    %s = arith.addf %in, %out : f64
    linalg.yield %s : f64
  } -> tensor<f64>
  %1 = linalg.generic {indexing_maps = [#id1, #to0], iterator_types = ["reduction"]} ins(%x : tensor<16xf32>) outs(%zf : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.maximumf %in, %out : f32
    linalg.yield %m : f32
  } -> tensor<f32>
  %2 = linalg.generic {indexing_maps = [#id1, #to0], iterator_types = ["reduction"]} ins(%x : tensor<16xf32>) outs(%zf : tensor<f32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.addf %in, %out : f32
    %s = arith.addf %t, %out : f32
    linalg.yield %s : f32
  } -> tensor<f32>
  %e = tensor.empty() : tensor<16xf32>
  %3 = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]} ins(%x : tensor<16xf32>) outs(%e : tensor<16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %s = arith.addf %in, %out : f32
    linalg.yield %s : f32
  } -> tensor<16xf32>
  return %0, %1, %2, %3 : tensor<f64>, tensor<f32>, tensor<f32>, tensor<16xf32>
}

// RUN: ferrule-opt %s --pass-pipeline='builtin.module(reverse{strategy=keep})' | FileCheck %s

// pullback "keep": the forward region also yields the tanh's and the exp's
// results (two extra outputs); the backward region reads them (and the
// input x, which d(exp(x*y))/dy needs) instead of evaluating tanh and exp
// again: it holds no math op, only the arithmetic of 1 - t^2 and e * x.
// CHECK-LABEL: func.func private @f_vjp
// CHECK: %[[FWD:.*]]:3 = linalg.generic
// CHECK: math.tanh
// CHECK: math.exp
// CHECK: linalg.yield %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, f32
// CHECK: linalg.generic
// CHECK-SAME: ins(%arg0, %arg1, %[[FWD]]#1, %[[FWD]]#2, %arg2
// CHECK-NOT: math.
// CHECK: linalg.yield
// CHECK: return
func.func private @f(%x: tensor<8xf32>, %y: tensor<8xf32>) -> tensor<8xf32> {
  %e = tensor.empty() : tensor<8xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x, %y : tensor<8xf32>, tensor<8xf32>) outs(%e : tensor<8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %t = math.tanh %a : f32
    %p = arith.mulf %a, %b : f32
    %q = math.exp %p : f32
    %s = arith.addf %t, %q : f32
    linalg.yield %s : f32
  } -> tensor<8xf32>
  return %r : tensor<8xf32>
}
func.func @g(%x: tensor<8xf32>, %y: tensor<8xf32>, %ct: tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>) {
  %0:3 = "ad.vjp"(%x, %y, %ct) {callee = @f, operandSegmentSizes = array<i32: 2, 1>} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return %0#1, %0#2 : tensor<8xf32>, tensor<8xf32>
}

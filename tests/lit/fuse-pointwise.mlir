// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(fuse-pointwise)' | FileCheck %s

// The LSTM cell: c2 feeds both the output and tanh(c2). Upstream
// linalg-fuse-elementwise-ops leaves this split (multi-use producer); here it
// becomes ONE region with two results, and the splat constant moves inside.
// CHECK-LABEL: func.func @lstm
// CHECK-NOT: linalg.generic
// CHECK: %[[R:.+]]:2 = linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel"]
// CHECK-SAME: ins(%arg0, %arg1, %arg2, %arg3, %arg4 :
// CHECK: arith.constant 1.000000e+00 : f32
// CHECK: math.exp
// CHECK: %[[TC:.+]] = math.tanh %[[C2:[0-9]+]] : f32
// CHECK-NEXT: %[[H:.+]] = arith.mulf %{{.+}}, %[[TC]]
// CHECK-NEXT: linalg.yield %[[C2]], %[[H]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]#1, %[[R]]#0
func.func @lstm(%i: tensor<4x8xf32>, %f: tensor<4x8xf32>, %g: tensor<4x8xf32>, %o: tensor<4x8xf32>, %c: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %one = arith.constant dense<1.0> : tensor<4x8xf32>
  %ni = arith.negf %i : tensor<4x8xf32>
  %ei = math.exp %ni : tensor<4x8xf32>
  %di = arith.addf %one, %ei : tensor<4x8xf32>
  %si = arith.divf %one, %di : tensor<4x8xf32>
  %sf = math.tanh %f : tensor<4x8xf32>
  %tg = math.tanh %g : tensor<4x8xf32>
  %so = math.tanh %o : tensor<4x8xf32>
  %a = arith.mulf %sf, %c : tensor<4x8xf32>
  %b = arith.mulf %si, %tg : tensor<4x8xf32>
  %c2 = arith.addf %a, %b : tensor<4x8xf32>
  %tc = math.tanh %c2 : tensor<4x8xf32>
  %h = arith.mulf %so, %tc : tensor<4x8xf32>
  return %h, %c2 : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// A broadcast (projection map) feeding elementwise ops is read through its
// map inside the fused region; the matmul between two pointwise groups is
// not crossed: merging across it would create a cycle.
// CHECK-LABEL: func.func @bias_act
// CHECK: %[[B:.+]] = linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}, #{{.+}}]
// CHECK: math.tanh
// CHECK: linalg.matmul
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK-NOT: linalg.generic
#bcast = affine_map<(d0, d1) -> (d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @bias_act(%x: tensor<4x8xf32>, %b: tensor<8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %bb = linalg.generic {indexing_maps = [#bcast, #id], iterator_types = ["parallel", "parallel"]} ins(%b : tensor<8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<4x8xf32>
  %s = arith.addf %x, %bb : tensor<4x8xf32>
  %t = math.tanh %s : tensor<4x8xf32>
  %z = arith.constant dense<0.0> : tensor<4x8xf32>
  %m = linalg.matmul ins(%t, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %u = math.exp %m : tensor<4x8xf32>
  %v = arith.mulf %u, %t : tensor<4x8xf32>
  return %v : tensor<4x8xf32>
}

// -----

// Different domains are never merged.
// CHECK-LABEL: func.func @two_domains
// CHECK: linalg.generic
// CHECK: linalg.generic
func.func @two_domains(%a: tensor<4xf32>, %b: tensor<8xf32>) -> (tensor<4xf32>, tensor<8xf32>) {
  %x = math.exp %a : tensor<4xf32>
  %y = math.exp %b : tensor<8xf32>
  return %x, %y : tensor<4xf32>, tensor<8xf32>
}

// -----

// A value and its own transpose: the transpose reads %p through a
// permutation map, so %p and the transpose can never share one region
// (the fused loop would read %p's element (j, i) at iteration (i, j),
// computed at another iteration). Regression: fusing them erased %p while
// the region still read it (LLVM ERROR: operation destroyed but still has
// uses).
// CHECK-LABEL: func.func @self_transpose
// CHECK: %[[P:.+]] = linalg.generic
// CHECK: arith.addf
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[P]], %[[P]] :
// CHECK-NOT: linalg.generic
#t = affine_map<(d0, d1) -> (d1, d0)>
#i = affine_map<(d0, d1) -> (d0, d1)>
func.func @self_transpose(%a: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %one = arith.constant dense<1.0> : tensor<2x2xf32>
  %p = arith.addf %a, %one : tensor<2x2xf32>
  %e = tensor.empty() : tensor<2x2xf32>
  %pt = linalg.generic {indexing_maps = [#t, #i], iterator_types = ["parallel", "parallel"]} ins(%p : tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<2x2xf32>
  %r = arith.addf %p, %pt : tensor<2x2xf32>
  return %r : tensor<2x2xf32>
}

// -----

// Two groups that are each convex but feed each other: {%a1, %a2} (both
// read %x) reaches %b2 through %m1, and {%b1, %b2} (both read %y) reaches
// %a2 through %m2. Merging both sibling pairs would make the two regions
// depend on each other. Regression: topo_sort_block found a dependence
// cycle. Now the second pair stays apart, so the regions can be ordered.
// CHECK-LABEL: func.func @crossing_groups
// CHECK: %[[B1:.+]] = linalg.generic {{.+}} ins(%arg1 :
// CHECK: math.tanh
// CHECK: %[[M2:.+]] = linalg.matmul ins(%[[B1]],
// CHECK: %[[A:.+]]:2 = linalg.generic {{.+}} ins(%arg0, %[[M2]] :
// CHECK: math.exp
// CHECK: %[[M1:.+]] = linalg.matmul ins(%[[A]]#0,
// CHECK: %[[B2:.+]] = linalg.generic {{.+}} ins(%arg1, %[[M1]] :
// CHECK: return %[[A]]#1, %[[B2]]
func.func @crossing_groups(%x: tensor<4x4xf32>, %y: tensor<4x4xf32>, %w: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x4xf32>
  %a1 = math.exp %x : tensor<4x4xf32>
  %b1 = math.tanh %y : tensor<4x4xf32>
  %m1 = linalg.matmul ins(%a1, %w : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  %m2 = linalg.matmul ins(%b1, %w : tensor<4x4xf32>, tensor<4x4xf32>) outs(%z : tensor<4x4xf32>) -> tensor<4x4xf32>
  %a2 = arith.mulf %x, %m2 : tensor<4x4xf32>
  %b2 = arith.mulf %y, %m1 : tensor<4x4xf32>
  return %a2, %b2 : tensor<4x4xf32>, tensor<4x4xf32>
}

// -----

// A region that reads a tensor at a computed position (a lowered gather)
// or its loop indices is not pointwise: it is never merged with its
// elementwise producer or consumer (an element of it is not a function of
// the elements at its own position).
// CHECK-LABEL: func.func @gather_is_not_pointwise
// CHECK: %[[I:.+]] = linalg.generic {{.+}} ins(%arg1 : tensor<4xi64>)
// CHECK: arith.addi
// CHECK: %[[G:.+]] = linalg.generic {{.+}} ins(%[[I]] : tensor<4xi64>)
// CHECK: tensor.extract %arg0
// CHECK: linalg.generic {{.+}} ins(%[[G]] : tensor<4xf32>)
// CHECK: math.exp
#g1 = affine_map<(d0) -> (d0)>
func.func @gather_is_not_pointwise(%t: tensor<9xf32>, %i: tensor<4xi64>) -> tensor<4xf32> {
  %one = arith.constant dense<1> : tensor<4xi64>
  %j = arith.addi %i, %one : tensor<4xi64>
  %e = tensor.empty() : tensor<4xf32>
  %g = linalg.generic {indexing_maps = [#g1, #g1], iterator_types = ["parallel"]} ins(%j : tensor<4xi64>) outs(%e : tensor<4xf32>) {
  ^bb0(%in: i64, %out: f32):
    %k = arith.index_cast %in : i64 to index
    %v = tensor.extract %t[%k] : tensor<9xf32>
    linalg.yield %v : f32
  } -> tensor<4xf32>
  %r = math.exp %g : tensor<4xf32>
  return %r : tensor<4xf32>
}

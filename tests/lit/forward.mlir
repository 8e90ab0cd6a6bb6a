// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(forward)' | FileCheck %s
// RUN: not ferrule-opt %S/Inputs/callback-grad.mlir --pass-pipeline='builtin.module(forward)' 2>&1 | FileCheck %s --check-prefix=CALLBACK
// CALLBACK: callback-grad.mlir:4:{{[0-9]+}}: error: forward: pure_callback 'gammaln' (at {{.+}}:4) is not differentiable: ferrule cannot see into host code, so forward mode has no derivative for it
// RUN: not ferrule-opt %S/Inputs/nonlinear-pullback.mlir --pass-pipeline='builtin.module(forward)' 2>&1 | FileCheck %s --check-prefix=NONLIN
// NONLIN: nonlinear-pullback.mlir:17:{{[0-9]+}}: error: forward: @e (called at {{.+}}:17) has an rrule, e_rrule, but no frule, so forward mode transposes the rule's pullback; it cannot: the pullback must be linear in the cotangents, and at {{.+}}:13 it applies math.exp to a tangent, which is not linear

// A pointwise region's dual form: ONE region computes the primal and the
// tangent (d tanh(x)*x = (1 - t^2)*x*dx + t*dx) in the same sweep.
// CHECK-LABEL: func.func @uses_jvp
// CHECK: call @f_jvp1(%arg0, %arg1)
// CHECK-LABEL: func.func private @f_jvp1
// CHECK: %[[R:.+]]:2 = linalg.generic
// CHECK-SAME: ins(%arg0, %arg1 : tensor<4xf32>, tensor<4xf32>)
// CHECK: %[[T:.+]] = math.tanh %in
// CHECK: arith.subf
// CHECK: arith.mulf %[[T]], %in :
// CHECK: linalg.yield
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]#0, %[[R]]#1
func.func private @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %t = math.tanh %x : tensor<4xf32>
  %y = arith.mulf %t, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
func.func @uses_jvp(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %dx) {callee = @f, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// Two frule_via_ad calls on the same callee and primals (one-hot directions,
// as a rule author writes them) merge into ONE two-direction region: the
// fused tangent code. A zero tangent is pruned symbolically.
// CHECK-LABEL: func.func @two_partials
// CHECK: %[[C:.+]]:3 = call @g_jvp2(%arg0, %arg1, %{{.+}}, %{{.+}})
// CHECK: return %[[C]]#1, %[[C]]#2
// CHECK-LABEL: func.func private @g_jvp2
// CHECK-COUNT-1: linalg.generic
// CHECK-NOT: linalg.generic
func.func private @g(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %p = arith.mulf %a, %b : tensor<4xf32>
  %e = math.exp %p : tensor<4xf32>
  return %e : tensor<4xf32>
}
func.func @two_partials(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %one = arith.constant dense<1.0> : tensor<4xf32>
  %zero = arith.constant dense<0.0> : tensor<4xf32>
  %0:2 = "ad.frule_via_ad"(%a, %b, %one, %zero) {callee = @g, num_directions = 1 : i64, operandSegmentSizes = array<i32: 2, 2>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  %1:2 = "ad.frule_via_ad"(%a, %b, %zero, %one) {callee = @g, num_directions = 1 : i64, operandSegmentSizes = array<i32: 2, 2>} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#1, %1#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// A custom frule is used by forward mode: the tangent comes from @cube_frule.
// CHECK-LABEL: func.func private @uses_cube_jvp1
// CHECK: call @cube_frule(%arg0, %arg1)
func.func private @cube(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  %1 = arith.mulf %0, %x : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @cube_frule(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  %1 = arith.mulf %0, %x : tensor<4xf32>
  %three = arith.constant dense<3.0> : tensor<4xf32>
  %2 = arith.mulf %three, %0 : tensor<4xf32>
  %3 = arith.mulf %2, %dx : tensor<4xf32>
  return %1, %3 : tensor<4xf32>, tensor<4xf32>
}
func.func private @uses_cube(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_frule"(%x) {callee = @cube, frule = @cube_frule, rule = "cube_frule"} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @jvp_cube(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %dx) {callee = @uses_cube, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// Forward mode of a scan: one scan of a new step that computes the step and
// its tangents together; the tangents of the carry join the carries, the
// tangents of the xs join the xs.
// CHECK-LABEL: func.func @rnn_jvp(
// CHECK-LABEL: func.func private @rnn_jvp1(
// CHECK: "ad.scan"(%arg0, %arg3, %arg1, %arg4, %arg2) {callee = @step_scan_jvp, length = 5 : i64, operandSegmentSizes = array<i32: 2, 2, 1>, remat = 0 : i64, reverse = 0 : i64}
// CHECK-LABEL: func.func private @step_jvp1
// CHECK: linalg.matmul
// CHECK: math.tanh
// CHECK-LABEL: func.func private @step_scan_jvp
// CHECK: call @step_jvp1
func.func private @step(%h: tensor<4x8xf32>, %x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x8xf32>
  %m = linalg.matmul ins(%h, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %a = arith.addf %m, %x : tensor<4x8xf32>
  %t = math.tanh %a : tensor<4x8xf32>
  return %t, %t : tensor<4x8xf32>, tensor<4x8xf32>
}
func.func private @rnn(%h0: tensor<4x8xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<8x8xf32>) -> tensor<5x4x8xf32> {
  %r:2 = "ad.scan"(%h0, %xs, %w) {callee = @step, length = 5 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>) -> (tensor<4x8xf32>, tensor<5x4x8xf32>)
  return %r#1 : tensor<5x4x8xf32>
}
func.func @rnn_jvp(%h0: tensor<4x8xf32>, %xs: tensor<5x4x8xf32>, %w: tensor<8x8xf32>, %th: tensor<4x8xf32>, %txs: tensor<5x4x8xf32>) -> (tensor<5x4x8xf32>, tensor<5x4x8xf32>) {
  %zw = arith.constant dense<0.0> : tensor<8x8xf32>
  %0:2 = "ad.jvp"(%h0, %xs, %w, %th, %txs, %zw) {callee = @rnn, num_directions = 1 : i64, operandSegmentSizes = array<i32: 3, 3>} : (tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>, tensor<4x8xf32>, tensor<5x4x8xf32>, tensor<8x8xf32>) -> (tensor<5x4x8xf32>, tensor<5x4x8xf32>)
  return %0#0, %0#1 : tensor<5x4x8xf32>, tensor<5x4x8xf32>
}

// -----

// A primitive with only an rrule under forward mode: the pushforward is the
// transpose of the rule's pullback, built as the pullback's VJP with respect
// to its cotangent (called with a zero cotangent and the tangent as the
// VJP's seed). The op itself stays for the primal output, and the choice is
// recorded for explain().
// CHECK: ferrule.rules = ["{{.+}}:{{[0-9]+}} | @sq | forward | sq_rrule | transposed (its pullback is linear)"]
// CHECK-LABEL: func.func private @uses_sq_jvp1
// CHECK: %[[Y:.+]] = "ad.custom_rrule"(%arg0)
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00>
// CHECK: %[[T:.+]]:3 = call @sq_pb_vjp(%arg0, %[[Z]], %arg1)
// CHECK: return %[[Y]], %[[T]]#2
// CHECK-LABEL: func.func private @sq_pb_vjp
// CHECK: linalg.generic
// CHECK: ^bb0(%[[X:.+]]: f32, %{{.+}}: f32, %[[DX:.+]]: f32,
// CHECK: %[[TWOX:.+]] = arith.mulf %{{.+}}, %[[X]]
// CHECK: arith.mulf %[[TWOX]], %[[DX]]
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @sq_pb(%x: tensor<4xf32>, %g: tensor<4xf32>) -> tensor<4xf32> {
  %two = arith.constant dense<2.0> : tensor<4xf32>
  %0 = arith.mulf %two, %x : tensor<4xf32>
  %1 = arith.mulf %0, %g : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @uses_sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @sq, forward = @sq_fwd, pullback = @sq_pb, rule = "sq_rrule", num_residuals = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @jvp_sq(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %dx) {callee = @uses_sq, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// -----

// jvp of a grad through a custom rrule whose pullback calls frule_via_ad
// (a Hessian-vector product through the rule authors' idiom): the vjp is
// lowered inside the copy forward mode differentiates, and the pullback it
// inlines brings an ad.frule_via_ad of its own, lowered in turn before the
// copy is differentiated (it once failed: "no forward-mode rule for
// ad.frule_via_ad").
// CHECK-LABEL: func.func @hvp
// CHECK: call @grad_loss_jvp1(%arg0, %arg1)
// CHECK-LABEL: func.func private @grad_loss_jvp1
// CHECK-NOT: ad.frule_via_ad
// CHECK: call @sq_pb_vjp
// CHECK: return
func.func @hvp(%x: tensor<4xf32>, %v: tensor<4xf32>) -> tensor<4xf32> {
  %0:2 = "ad.jvp"(%x, %v) {callee = @grad_loss, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#1 : tensor<4xf32>
}
func.func private @grad_loss(%x: tensor<4xf32>) -> tensor<4xf32> {
  %one = arith.constant dense<1.0> : tensor<4xf32>
  %0:2 = "ad.vjp"(%x, %one) {callee = @loss, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#1 : tensor<4xf32>
}
func.func private @loss(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @sq, forward = @sq_fwd, num_residuals = 1 : i64, pullback = @sq_pb, rule = "sq_rrule"} : (tensor<4xf32>) -> tensor<4xf32>
  %1 = arith.mulf %0, %x : tensor<4xf32>
  return %1 : tensor<4xf32>
}
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @sq_pb(%x: tensor<4xf32>, %g: tensor<4xf32>) -> tensor<4xf32> {
  %one = arith.constant dense<1.0> : tensor<4xf32>
  %0:2 = "ad.frule_via_ad"(%x, %one) {callee = @sq, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  %1 = arith.mulf %g, %0#1 : tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

// The partials of numpy's other ufuncs come from the same scalar table:
// atan2's (x/(x²+y²), -y/(x²+y²)), floor's (0, NaN at NaN: a select on
// x == x), fmod's (1, -roundeven((x - r)/y)).
// CHECK-LABEL: func.func private @h_jvp1
// CHECK: linalg.generic
// CHECK: %[[A:.+]] = math.atan2 %in, %in_{{[0-9]+}} : f64
// CHECK: arith.divf
// CHECK: arith.negf
// CHECK: math.floor
// CHECK: arith.cmpf oeq
// CHECK: arith.select
// CHECK: arith.remf
// CHECK: math.roundeven
// CHECK: linalg.yield
func.func private @h(%y: tensor<4xf64>, %x: tensor<4xf64>) -> tensor<4xf64> {
  %a = math.atan2 %y, %x : tensor<4xf64>
  %f = math.floor %a : tensor<4xf64>
  %m = arith.remf %f, %x : tensor<4xf64>
  return %m : tensor<4xf64>
}
func.func @uses_h(%y: tensor<4xf64>, %x: tensor<4xf64>, %dy: tensor<4xf64>, %dx: tensor<4xf64>) -> (tensor<4xf64>, tensor<4xf64>) {
  %0:2 = "ad.jvp"(%y, %x, %dy, %dx) {callee = @h, num_directions = 1 : i64, operandSegmentSizes = array<i32: 2, 2>} : (tensor<4xf64>, tensor<4xf64>, tensor<4xf64>, tensor<4xf64>) -> (tensor<4xf64>, tensor<4xf64>)
  return %0#0, %0#1 : tensor<4xf64>, tensor<4xf64>
}

// Not a test by itself: input for forward.mlir's error check. The pullback
// is not linear in its cotangent (exp of it), so forward mode cannot
// transpose it.
func.func private @e(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = math.exp %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @e_fwd(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = math.exp %x : tensor<4xf32>
  return %0, %x : tensor<4xf32>, tensor<4xf32>
}
func.func private @e_pb(%x: tensor<4xf32>, %g: tensor<4xf32>) -> tensor<4xf32> {
  %0 = math.exp %g : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @uses_e(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_rrule"(%x) {callee = @e, forward = @e_fwd, pullback = @e_pb, rule = "e_rrule", num_residuals = 1 : i64} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @jvp_e(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %dx) {callee = @uses_e, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// Not a test by itself: input for reverse.mlir's error check. The frule's
// tangent is the square of the input tangent, so reverse mode cannot
// transpose it.
func.func private @sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func private @sq_frule(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.mulf %x, %x : tensor<4xf32>
  %1 = arith.mulf %dx, %dx : tensor<4xf32>
  return %0, %1 : tensor<4xf32>, tensor<4xf32>
}
func.func private @uses_sq(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.custom_frule"(%x) {callee = @sq, frule = @sq_frule, rule = "sq_frule"} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @grad_sq(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @uses_sq, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

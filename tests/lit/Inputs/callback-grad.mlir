// Not a test by itself: input for reverse.mlir's and forward.mlir's error
// checks. A host callback has no derivative.
func.func private @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.pure_callback"(%x) {callback = 0 : i64, name = "gammaln"} : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
func.func @grad_f(%x: tensor<4xf32>, %ct: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.vjp"(%x, %ct) {callee = @f, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}
func.func @jvp_f(%x: tensor<4xf32>, %dx: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0:2 = "ad.jvp"(%x, %dx) {callee = @f, num_directions = 1 : i64, operandSegmentSizes = array<i32: 1, 1>} : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<4xf32>
}

// Not a test by itself: input for ad-dialect.mlir's error checks.
func.func private @step(%c: tensor<4xf32>, %x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  return %c, %x : tensor<4xf32>, tensor<4xf32>
}
func.func @f(%c: tensor<4xf32>, %xs: tensor<3x4xf32>) -> (tensor<4xf32>, tensor<5x4xf32>) {
  %0:2 = "ad.scan"(%c, %xs) {callee = @step, length = 5 : i64, reverse = 0 : i64, remat = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4xf32>, tensor<3x4xf32>) -> (tensor<4xf32>, tensor<5x4xf32>)
  return %0#0, %0#1 : tensor<4xf32>, tensor<5x4xf32>
}

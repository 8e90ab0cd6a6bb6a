// Not a test by itself: input for ad-dialect.mlir's error checks.
func.func @f(%t: tensor<5x3xf32>, %i: tensor<4xi32>) -> tensor<4x5xf32> {
  %0 = "ad.gather"(%t, %i) {axis = 0 : i64} : (tensor<5x3xf32>, tensor<4xi32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}

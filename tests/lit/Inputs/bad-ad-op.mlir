// Not a test by itself: input for ad-dialect.mlir's error checks.
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = "ad.bogus"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

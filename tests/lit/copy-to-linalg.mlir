// RUN: ferrule-opt %s --pass-pipeline='builtin.module(copy-to-linalg)' | FileCheck %s

// A strided copy becomes a linalg.generic (later a loop nest), not a call of
// the C runner library's memrefCopy.
// CHECK-LABEL: func.func @strided
// CHECK-NOT: memref.copy
// CHECK: linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}], iterator_types = ["parallel", "parallel"]} ins(%arg0 : memref<4x8xf32>) outs(%{{.+}} : memref<4x8xf32, strided<[32, 1], offset: 8>>)
// CHECK-NEXT: ^bb0(%[[IN:.+]]: f32, %{{.+}}: f32):
// CHECK-NEXT: linalg.yield %[[IN]] : f32
func.func @strided(%src: memref<4x8xf32>, %dst: memref<4x32xf32>) {
  %s = memref.subview %dst[0, 8] [4, 8] [1, 1] : memref<4x32xf32> to memref<4x8xf32, strided<[32, 1], offset: 8>>
  memref.copy %src, %s : memref<4x8xf32> to memref<4x8xf32, strided<[32, 1], offset: 8>>
  return
}

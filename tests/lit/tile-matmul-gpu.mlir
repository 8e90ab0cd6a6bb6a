// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(tile-matmul-gpu)' | FileCheck %s

// 10x12 @ 12x6 with 4x4 tiles: an scf.parallel over the 2x1 full tiles, each
// point carrying 16 accumulators through the k loop (4 loads of A, 4 of B,
// 16 multiply-adds per k), then elementwise parallel loops over columns 4..6
// of rows 0..8 and over rows 8..10.
// CHECK-LABEL: func.func @mm
// CHECK-NOT: linalg.matmul
// CHECK: scf.parallel (%[[I:.+]], %[[J:.+]]) = (%c0{{.*}}, %c0{{.*}}) to (%c8{{.*}}, %c4{{.*}}) step (%c4{{.*}}, %c4{{.*}})
// CHECK-COUNT-16: memref.load %arg2
// CHECK: scf.for {{.*}} iter_args
// CHECK-COUNT-4: memref.load %arg0
// CHECK-COUNT-4: memref.load %arg1
// CHECK-COUNT-16: arith.mulf
// CHECK: scf.yield
// CHECK-COUNT-16: memref.store
// CHECK: scf.reduce
// CHECK: scf.parallel ({{.*}}) = (%c0{{.*}}, %c4{{.*}}) to (%c8{{.*}}, %c6{{.*}})
// CHECK: scf.parallel ({{.*}}) = (%c8{{.*}}, %c0{{.*}}) to (%c10{{.*}}, %c6{{.*}})
func.func @mm(%a: memref<10x12xf32>, %b: memref<12x6xf32>, %c: memref<10x6xf32>) {
  linalg.matmul ins(%a, %b : memref<10x12xf32>, memref<12x6xf32>) outs(%c : memref<10x6xf32>)
  return
}

// -----

// A batch: the batch dimension is the outermost parallel dimension.
// CHECK-LABEL: func.func @batched
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = (%c0{{.*}}, %c0{{.*}}, %c0{{.*}}) to (%c3{{.*}}, %c8{{.*}}, %c16{{.*}}) step (%c1{{.*}}, %c4{{.*}}, %c4{{.*}})
// CHECK-NOT: linalg.batch_matmul
func.func @batched(%a: memref<3x8x5xf64>, %b: memref<3x5x16xf64>, %c: memref<3x8x16xf64>) {
  linalg.batch_matmul ins(%a, %b : memref<3x8x5xf64>, memref<3x5x16xf64>) outs(%c : memref<3x8x16xf64>)
  return
}

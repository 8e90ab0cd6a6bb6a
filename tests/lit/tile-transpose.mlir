// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(tile-transpose)' | FileCheck %s

// A 2-D transpose copy (input map swapped, output identity) becomes loops
// over 8x8 blocks of the output, cut to size at the edges (20 = 2x8 + 4):
// dst[i, j] = src[j, i].
// CHECK-LABEL: func.func @transpose
// CHECK-NOT: linalg.generic
// CHECK: %[[C20:.+]] = arith.constant 20 : index
// CHECK: scf.for %[[I0:.+]] = %{{.+}} to %[[C20]] step %[[C8:.+]] {
// CHECK: %[[I1:.+]] = arith.minui
// CHECK: scf.for %[[J0:.+]] = %{{.+}} to %{{.+}} step %[[C8]] {
// CHECK: %[[J1:.+]] = arith.minui
// CHECK: scf.for %[[I:.+]] = %[[I0]] to %[[I1]] step
// CHECK: scf.for %[[J:.+]] = %[[J0]] to %[[J1]] step
// CHECK: %[[V:.+]] = memref.load %arg0[%[[J]], %[[I]]] : memref<12x20xf32>
// CHECK: memref.store %[[V]], %arg1[%[[I]], %[[J]]] : memref<20x12xf32>
#swap = affine_map<(d0, d1) -> (d1, d0)>
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @transpose(%src: memref<12x20xf32>, %dst: memref<20x12xf32>) {
  linalg.generic {indexing_maps = [#swap, #id], iterator_types = ["parallel", "parallel"]}
      ins(%src : memref<12x20xf32>) outs(%dst : memref<20x12xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  return
}

// -----

// The other way round (output map swapped): the same loops over dst.
// CHECK-LABEL: func.func @transpose_out
// CHECK-NOT: linalg.generic
// CHECK: memref.load %arg0[%{{.+}}, %{{.+}}] : memref<12x20xi32>
// CHECK: memref.store %{{.+}}, %arg1[%{{.+}}, %{{.+}}] : memref<20x12xi32>
#swap2 = affine_map<(d0, d1) -> (d1, d0)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @transpose_out(%src: memref<12x20xi32>, %dst: memref<20x12xi32>) {
  linalg.generic {indexing_maps = [#id2, #swap2], iterator_types = ["parallel", "parallel"]}
      ins(%src : memref<12x20xi32>) outs(%dst : memref<20x12xi32>) {
  ^bb0(%in: i32, %out: i32):
    linalg.yield %in : i32
  }
  return
}

// -----

// Not a pure transpose: a body that computes, an identity copy, 3-D.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-3: linalg.generic
#s = affine_map<(d0, d1) -> (d1, d0)>
#i = affine_map<(d0, d1) -> (d0, d1)>
#s3 = affine_map<(d0, d1, d2) -> (d2, d1, d0)>
#i3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @kept(%a: memref<4x6xf32>, %b: memref<6x4xf32>, %c: memref<6x4xf32>,
                %d: memref<2x3x4xf32>, %e: memref<4x3x2xf32>) {
  linalg.generic {indexing_maps = [#s, #i], iterator_types = ["parallel", "parallel"]}
      ins(%a : memref<4x6xf32>) outs(%b : memref<6x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %in : f32
    linalg.yield %0 : f32
  }
  linalg.generic {indexing_maps = [#i, #i], iterator_types = ["parallel", "parallel"]}
      ins(%b : memref<6x4xf32>) outs(%c : memref<6x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  linalg.generic {indexing_maps = [#s3, #i3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%d : memref<2x3x4xf32>) outs(%e : memref<4x3x2xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  }
  return
}

// RUN: ferrule-opt %s --pass-pipeline='builtin.module(tile-matmul{lanes-bytes=32 rows=4 threads=2})' | FileCheck %s

// threads=2: a product of at least 2^20 multiply-adds over at least two
// column blocks (32x256 @ 256x128: 8 blocks of 16 columns) becomes a call
// of a team function with tid = 0, nt = 1 (the whole product: the serial
// meaning); its B panels are allocated by the caller, one 256x16 panel per
// thread. The two identical products share one team function; the small
// one (8x8 @ 8x32) is tiled inline as without threads.
// CHECK-LABEL: func.func @two_products
// CHECK: %[[PANELS:.+]] = memref.alloc() : memref<2x256x16xf32>
// CHECK: call @__ferrule_team_mm0(%arg0, %arg1, %arg2, %[[PANELS]], %c0{{.*}}, %c1{{.*}}) : (memref<32x256xf32>, memref<256x128xf32>, memref<32x128xf32>, memref<2x256x16xf32>, index, index) -> ()
// CHECK: memref.dealloc %[[PANELS]]
// CHECK: %[[PANELS2:.+]] = memref.alloc() : memref<2x256x16xf32>
// CHECK: call @__ferrule_team_mm0(%arg0, %arg1, %arg3, %[[PANELS2]],
// CHECK: memref.dealloc %[[PANELS2]]
// CHECK-NOT: call @
// CHECK: vector.fma
// CHECK: return

// The team function: thread tid of nt takes column blocks
// [8*tid/nt, 8*(tid+1)/nt) (times 16 columns) and packs into panel tid.
// CHECK-LABEL: func.func private @__ferrule_team_mm0(%arg0: memref<32x256xf32>, %arg1: memref<256x128xf32>, %arg2: memref<32x128xf32>, %arg3: memref<2x256x16xf32>, %arg4: index, %arg5: index)
// CHECK: %[[C8:.+]] = arith.constant 8 : index
// CHECK: arith.muli %[[C8]], %arg4
// CHECK: arith.divui {{.*}}, %arg5
// CHECK: %[[PANEL:.+]] = memref.subview %arg3[%arg4, 0, 0] [1, 256, 16] [1, 1, 1]
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c16
// CHECK: vector.store {{.*}}, %[[PANEL]]
// CHECK: vector.fma
// CHECK-NOT: memref.alloc
// CHECK: return
func.func @two_products(%a: memref<32x256xf32>, %b: memref<256x128xf32>, %c: memref<32x128xf32>,
                        %d: memref<32x128xf32>, %e: memref<8x8xf32>, %f: memref<8x32xf32>,
                        %g: memref<8x32xf32>) {
  linalg.matmul ins(%a, %b : memref<32x256xf32>, memref<256x128xf32>) outs(%c : memref<32x128xf32>)
  linalg.matmul ins(%a, %b : memref<32x256xf32>, memref<256x128xf32>) outs(%d : memref<32x128xf32>)
  linalg.matmul ins(%e, %f : memref<8x8xf32>, memref<8x32xf32>) outs(%g : memref<8x32xf32>)
  return
}

// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(tile-matmul{lanes-bytes=32 rows=4})' | FileCheck %s

// 10x12 @ 12x40, f32, 8 lanes: a 4-row x 16-column register tile over rows
// 0..8 and columns 0..32 (8 accumulators carried through the k loop, one
// fma each per k), then rows 8..10 of those columns with a 2-row tile (4
// accumulators) in the same column loop, then columns 32..40 of all rows
// as i,j,k loops with a reassociable accumulator.
// CHECK-LABEL: func.func @mm
// CHECK-NOT: linalg.matmul
// CHECK: scf.for %[[J:.+]] = %c0 to %c32 step %c16
// CHECK: scf.for %[[I:.+]] = %c0{{.*}} to %c8{{.*}} step %c4
// CHECK-COUNT-8: vector.load %arg2
// CHECK: scf.for {{.*}} iter_args
// CHECK-COUNT-2: vector.load %arg1
// CHECK: vector.broadcast
// CHECK-COUNT-2: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-2: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-2: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-2: vector.fma
// CHECK: scf.yield {{.*}} : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
// CHECK-COUNT-8: vector.store
// CHECK: vector.load %arg2[%c8
// CHECK-COUNT-3: vector.load %arg2
// CHECK: scf.for {{.*}} iter_args
// CHECK-COUNT-2: vector.load %arg1
// CHECK-COUNT-2: vector.fma
// CHECK: vector.broadcast
// CHECK-COUNT-2: vector.fma
// CHECK: scf.yield {{.*}} : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
// CHECK-COUNT-4: vector.store
// CHECK: scf.for {{.*}} = %c0{{.*}} to %c10{{.*}} step %c1
// CHECK: scf.for {{.*}} = %c32{{.*}} to %c40{{.*}} step %c1
// CHECK: arith.mulf {{.*}} fastmath<reassoc,contract>
// CHECK: arith.addf {{.*}} fastmath<reassoc,contract>
// CHECK-NOT: scf.for
// CHECK: return
func.func @mm(%a: memref<10x12xf32>, %b: memref<12x40xf32>, %c: memref<10x40xf32>) {
  linalg.matmul ins(%a, %b : memref<10x12xf32>, memref<12x40xf32>) outs(%c : memref<10x40xf32>)
  return
}

// -----

// A matrix-vector product (N = 1 < 2 lanes): i,j,k loops only, the k loop
// carrying one reassociable f64 accumulator.
// CHECK-LABEL: func.func @matvec
// CHECK-NOT: vector.
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (f64)
// CHECK: arith.addf {{.*}} fastmath<reassoc,contract> : f64
func.func @matvec(%a: memref<6x9xf64>, %b: memref<9x1xf64>, %c: memref<6x1xf64>) {
  linalg.matmul ins(%a, %b : memref<6x9xf64>, memref<9x1xf64>) outs(%c : memref<6x1xf64>)
  return
}

// -----

// B read through a transposed view (innermost stride 16): left alone.
// CHECK-LABEL: func.func @strided
// CHECK: linalg.matmul
func.func @strided(%a: memref<4x8xf32>, %b: memref<8x16xf32, strided<[1, 8]>>, %c: memref<4x16xf32>) {
  linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x16xf32, strided<[1, 8]>>) outs(%c : memref<4x16xf32>)
  return
}

// -----

// A batch of products: the 2-D kernel on rank-reduced views of each matrix.
// CHECK-LABEL: func.func @batched
// CHECK-NOT: linalg.batch_matmul
// CHECK: scf.for %[[B:.+]] = %c0 to %c3 step %c1
// CHECK: memref.subview %arg0[%[[B]], 0, 0] [1, 8, 5] [1, 1, 1] : memref<3x8x5xf32> to memref<8x5xf32, strided<[5, 1], offset: ?>>
// CHECK: memref.subview %arg1[%[[B]], 0, 0] [1, 5, 16] [1, 1, 1]
// CHECK: memref.subview %arg2[%[[B]], 0, 0] [1, 8, 16] [1, 1, 1]
// CHECK: vector.fma
func.func @batched(%a: memref<3x8x5xf32>, %b: memref<3x5x16xf32>, %c: memref<3x8x16xf32>) {
  linalg.batch_matmul ins(%a, %b : memref<3x8x5xf32>, memref<3x5x16xf32>) outs(%c : memref<3x8x16xf32>)
  return
}

// -----

// 16x32 @ 32x48: K >= 16 and two row blocks read each column panel, so the
// 32x16 panel of B is first packed into a contiguous buffer (B's rows are 48
// elements apart), which the register tile's loads read instead of B.
// CHECK-LABEL: func.func @packed
// CHECK: %[[P:.+]] = memref.alloc() : memref<32x16xf32>
// CHECK: scf.for %[[J:.+]] = %c0 to %c48 step %c16
// CHECK: scf.for
// CHECK: vector.load %arg1
// CHECK: vector.store {{.*}}, %[[P]]
// CHECK: scf.for {{.*}} step %c4
// CHECK: scf.for {{.*}} iter_args
// CHECK-COUNT-2: vector.load %[[P]]
// CHECK: memref.dealloc %[[P]]
func.func @packed(%a: memref<16x32xf32>, %b: memref<32x48xf32>, %c: memref<16x48xf32>) {
  linalg.matmul ins(%a, %b : memref<16x32xf32>, memref<32x48xf32>) outs(%c : memref<16x48xf32>)
  return
}

// -----

// 300x512 @ 512x32: A's rows are taken in passes of 128 (128 x 512 float32
// = 256 KiB, A_BLOCK_BYTES), each going over B's column blocks and packing
// their panels again: a loop over the two full passes (rows 0..256), then
// the 44-row tail (rows 256..300: 11 blocks of 4, no remainder).
// CHECK-LABEL: func.func @passes
// CHECK: memref.alloc() : memref<512x16xf32>
// CHECK: scf.for %[[P:.+]] = %c0{{.*}} to %c256{{.*}} step %c128
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c16{{.*}}
// CHECK: scf.for %{{.+}} = %[[P]] to %{{.+}} step %c4
// CHECK: vector.fma
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c16{{.*}}
// CHECK: scf.for %{{.+}} = %c256{{.*}} to %c300{{.*}} step %c4
// CHECK: vector.fma
// CHECK: memref.dealloc
func.func @passes(%a: memref<300x512xf32>, %b: memref<512x32xf32>, %c: memref<300x32xf32>) {
  linalg.matmul ins(%a, %b : memref<300x512xf32>, memref<512x32xf32>) outs(%c : memref<300x32xf32>)
  return
}

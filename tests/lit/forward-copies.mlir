// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(forward-copies)' | FileCheck %s

// Two outputs of one region land in two slices of one buffer: both are
// written in place; temporaries, copies and deallocs disappear.
// CHECK-LABEL: func.func @two_slices
// CHECK-NOT: memref.alloc
// CHECK-DAG: %[[S1:.+]] = memref.subview %arg1[0, 4]
// CHECK-DAG: %[[S0:.+]] = memref.subview %arg1[0, 0]
// CHECK: linalg.generic
// CHECK-SAME: outs(%[[S0]], %[[S1]] :
// CHECK-NOT: memref.copy
// CHECK-NOT: memref.dealloc
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @two_slices(%x: memref<2x4xf32>, %out: memref<2x8xf32>) {
  %a = memref.alloc() : memref<2x4xf32>
  %b = memref.alloc() : memref<2x4xf32>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x4xf32>) outs(%a, %b : memref<2x4xf32>, memref<2x4xf32>) {
  ^bb0(%in: f32, %o0: f32, %o1: f32):
    %n = arith.negf %in : f32
    linalg.yield %in, %n : f32, f32
  }
  %s0 = memref.subview %out[0, 0] [2, 4] [1, 1] : memref<2x8xf32> to memref<2x4xf32, strided<[8, 1]>>
  memref.copy %a, %s0 : memref<2x4xf32> to memref<2x4xf32, strided<[8, 1]>>
  %s1 = memref.subview %out[0, 4] [2, 4] [1, 1] : memref<2x8xf32> to memref<2x4xf32, strided<[8, 1], offset: 4>>
  memref.copy %b, %s1 : memref<2x4xf32> to memref<2x4xf32, strided<[8, 1], offset: 4>>
  memref.dealloc %a : memref<2x4xf32>
  memref.dealloc %b : memref<2x4xf32>
  return
}

// -----

// A read of the destination between the region and the copy blocks the
// rewrite: the copy stays.
// CHECK-LABEL: func.func @read_between
// CHECK: memref.alloc
// CHECK: memref.copy
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @read_between(%x: memref<2x4xf32>, %out: memref<2x4xf32>) -> f32 {
  %a = memref.alloc() : memref<2x4xf32>
  linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x4xf32>) outs(%a : memref<2x4xf32>) {
  ^bb0(%in: f32, %o0: f32):
    linalg.yield %in : f32
  }
  %c0 = arith.constant 0 : index
  %v = memref.load %out[%c0, %c0] : memref<2x4xf32>
  memref.copy %a, %out : memref<2x4xf32> to memref<2x4xf32>
  memref.dealloc %a : memref<2x4xf32>
  return %v : f32
}

// -----

// Two concatenations built in one tensor.empty (the GRU's input and state
// cotangents, PyTorch convention): bufferization writes the first result's
// slice %s7 of %out2, copies it to %out1, then copies %tmp into %s7.
// Forwarding that last copy would make the region write %tmp's values into
// %s7 (which already receives another of its outputs) before %s7 is read by
// the copy in between. Regression: the GRU's gh cotangent lost its factor r.
// Both conditions block the rewrite: the copies stay.
// CHECK-LABEL: func.func @dst_read_between
// CHECK: %[[T:.+]] = memref.alloc
// CHECK: linalg.generic
// CHECK: memref.copy %[[S7:.+]], %{{.+}} :
// CHECK: memref.copy %[[T]], %[[S7]] :
#m = affine_map<(d0, d1) -> (d0, d1)>
func.func @dst_read_between(%x: memref<2x2xf32>, %out1: memref<2x6xf32>, %out2: memref<2x6xf32>) {
  %tmp = memref.alloc() : memref<2x2xf32>
  %s7 = memref.subview %out2[0, 4] [2, 2] [1, 1] : memref<2x6xf32> to memref<2x2xf32, strided<[6, 1], offset: 4>>
  linalg.generic {indexing_maps = [#m, #m, #m], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x2xf32>) outs(%tmp, %s7 : memref<2x2xf32>, memref<2x2xf32, strided<[6, 1], offset: 4>>) {
  ^bb0(%in: f32, %o0: f32, %o1: f32):
    %n = arith.negf %in : f32
    linalg.yield %in, %n : f32, f32
  }
  %s11 = memref.subview %out1[0, 4] [2, 2] [1, 1] : memref<2x6xf32> to memref<2x2xf32, strided<[6, 1], offset: 4>>
  memref.copy %s7, %s11 : memref<2x2xf32, strided<[6, 1], offset: 4>> to memref<2x2xf32, strided<[6, 1], offset: 4>>
  memref.copy %tmp, %s7 : memref<2x2xf32> to memref<2x2xf32, strided<[6, 1], offset: 4>>
  memref.dealloc %tmp : memref<2x2xf32>
  return
}

// -----

// A copy whose SOURCE overlaps the destination, between the region and the
// copy to forward: the old contents of %out are read there, so the region
// may not write %out early.
// CHECK-LABEL: func.func @dst_source_between
// CHECK: memref.alloc
// CHECK: linalg.generic
// CHECK: memref.copy %arg1, %arg2
// CHECK: memref.copy
#m2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @dst_source_between(%x: memref<2x2xf32>, %out: memref<2x2xf32>, %out2: memref<2x2xf32>) {
  %tmp = memref.alloc() : memref<2x2xf32>
  linalg.generic {indexing_maps = [#m2, #m2], iterator_types = ["parallel", "parallel"]} ins(%x : memref<2x2xf32>) outs(%tmp : memref<2x2xf32>) {
  ^bb0(%in: f32, %o0: f32):
    linalg.yield %in : f32
  }
  memref.copy %out, %out2 : memref<2x2xf32> to memref<2x2xf32>
  memref.copy %tmp, %out : memref<2x2xf32> to memref<2x2xf32>
  memref.dealloc %tmp : memref<2x2xf32>
  return
}

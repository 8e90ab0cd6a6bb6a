// RUN: ferrule-opt %s --pass-pipeline='builtin.module(outline-repeated-loops)' | FileCheck %s

// Two copies of one nest (an unrolled step) on rows 0 and 1 of a buffer:
// one function, called twice; the rows' static offsets become dynamic at
// the call (memref.cast), the constants are cloned into the function. The
// nest that occurs once (the doubling) stays where it is.
// CHECK-LABEL: func.func @caller
// CHECK: %[[R0:.+]] = memref.subview %arg0[0, 0] [1, 4] [1, 1]
// CHECK: %[[C0:.+]] = memref.cast %[[R0]] : memref<4xf32, strided<[1]>> to memref<4xf32, strided<[1], offset: ?>>
// CHECK: call @caller_loop0(%[[C0]], %arg1) : (memref<4xf32, strided<[1], offset: ?>>, memref<4xf32>) -> ()
// CHECK: %[[R1:.+]] = memref.subview %arg0[1, 0] [1, 4] [1, 1]
// CHECK: %[[C1:.+]] = memref.cast %[[R1]] : memref<4xf32, strided<[1], offset: 4>> to memref<4xf32, strided<[1], offset: ?>>
// CHECK: call @caller_loop0(%[[C1]], %arg1)
// CHECK: scf.for
// CHECK: arith.addf
// CHECK: return
// CHECK-LABEL: func.func private @caller_loop0(%arg0: memref<4xf32, strided<[1], offset: ?>>, %arg1: memref<4xf32>) attributes {passthrough = ["noinline"]}
// CHECK-DAG: arith.constant 0 : index
// CHECK-DAG: arith.constant 4 : index
// CHECK-DAG: arith.constant 1 : index
// CHECK-DAG: arith.constant 2.000000e+00 : f32
// CHECK: scf.for
// CHECK: memref.load %arg0
// CHECK: arith.mulf
// CHECK: memref.store {{.*}}, %arg1
// CHECK-NOT: func.func private @{{.*}}loop1
func.func @caller(%buf: memref<2x4xf32>, %out: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %two = arith.constant 2.0 : f32
  %r0 = memref.subview %buf[0, 0] [1, 4] [1, 1] : memref<2x4xf32> to memref<4xf32, strided<[1]>>
  scf.for %i = %c0 to %c4 step %c1 {
    %x = memref.load %r0[%i] : memref<4xf32, strided<[1]>>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %out[%i] : memref<4xf32>
  }
  %r1 = memref.subview %buf[1, 0] [1, 4] [1, 1] : memref<2x4xf32> to memref<4xf32, strided<[1], offset: 4>>
  scf.for %i = %c0 to %c4 step %c1 {
    %x = memref.load %r1[%i] : memref<4xf32, strided<[1], offset: 4>>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %out[%i] : memref<4xf32>
  }
  scf.for %i = %c0 to %c4 step %c1 {
    %x = memref.load %out[%i] : memref<4xf32>
    %y = arith.addf %x, %x : f32
    memref.store %y, %out[%i] : memref<4xf32>
  }
  return
}

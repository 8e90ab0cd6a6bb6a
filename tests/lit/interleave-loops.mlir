// RUN: ferrule-opt %s --pass-pipeline='builtin.module(interleave-loops{count=2})' | FileCheck %s

// CHECK-DAG: #[[I2:.*]] = #llvm.loop_interleave<count = 2 : i64>
// CHECK-DAG: #[[I8:.*]] = #llvm.loop_interleave<count = 8 : i64>
// CHECK-DAG: #[[A2:.*]] = #llvm.loop_annotation<interleave = #[[I2]]>
// CHECK-DAG: #[[A8:.*]] = #llvm.loop_annotation<interleave = #[[I8]]>

// An innermost loop with transcendental math: interleaved 2x.
// CHECK-LABEL: func.func @math_loop
// CHECK: scf.for
// CHECK: math.tanh
// CHECK: } {llvm.loop_annotation = #[[A2]]}
func.func @math_loop(%m: memref<1024xf32>, %o: memref<1024xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant 1024 : index
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %t = math.tanh %x : f32
    memref.store %t, %o[%i] : memref<1024xf32>
  }
  return
}

// A nest: only the inner loop; a division counts as long latency; so does
// math inside an scf.if; a dynamic trip count is annotated too.
// CHECK-LABEL: func.func @nest
// CHECK: scf.for
// CHECK: scf.for
// CHECK: arith.divf
// CHECK: } {llvm.loop_annotation = #[[A2]]}
// CHECK-NEXT: }
// CHECK-NOT: llvm.loop_annotation
// CHECK: scf.for
// CHECK: scf.if
// CHECK: math.exp
// CHECK: } {llvm.loop_annotation = #[[A2]]}
// CHECK: return
func.func @nest(%m: memref<64x128xf32>, %o: memref<64x128xf32>, %n: index, %c: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  scf.for %i = %c0 to %c64 step %c1 {
    scf.for %j = %c0 to %c128 step %c1 {
      %x = memref.load %m[%i, %j] : memref<64x128xf32>
      %y = arith.divf %x, %x : f32
      memref.store %y, %o[%i, %j] : memref<64x128xf32>
    }
  }
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%c0, %i] : memref<64x128xf32>
    %y = scf.if %c -> (f32) {
      %e = math.exp %x : f32
      scf.yield %e : f32
    } else {
      scf.yield %x : f32
    }
    memref.store %y, %o[%c0, %i] : memref<64x128xf32>
  }
  return
}

// Left alone: cheap bodies (no long-latency op), short trip counts, vector
// code (the matmul micro-kernels), loops already annotated.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: {llvm.loop_annotation = #[[A2]]}
// CHECK: } {llvm.loop_annotation = #[[A8]]}
// CHECK-NOT: {llvm.loop_annotation = #[[A2]]}
// CHECK: return
func.func @left_alone(%m: memref<1024xf32>, %o: memref<1024xf32>, %v: memref<1024xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %n = arith.constant 1024 : index
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %y = arith.mulf %x, %x : f32
    %a = math.absf %y : f32
    memref.store %a, %o[%i] : memref<1024xf32>
  }
  scf.for %i = %c0 to %c32 step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %t = math.tanh %x : f32
    memref.store %t, %o[%i] : memref<1024xf32>
  }
  scf.for %i = %c0 to %n step %c8 {
    %x = vector.load %m[%i] : memref<1024xf32>, vector<8xf32>
    %t = math.tanh %x : vector<8xf32>
    vector.store %t, %v[%i] : memref<1024xf32>, vector<8xf32>
  }
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %t = math.tanh %x : f32
    memref.store %t, %o[%i] : memref<1024xf32>
  } {llvm.loop_annotation = #llvm.loop_annotation<interleave = <count = 8>>}
  return
}

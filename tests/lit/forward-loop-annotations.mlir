// RUN: ferrule-opt %s --pass-pipeline='builtin.module(convert-scf-to-cf, convert-cf-to-llvm, convert-arith-to-llvm, convert-index-to-llvm, finalize-memref-to-llvm, convert-func-to-llvm, reconcile-unrealized-casts, forward-loop-annotations)' | FileCheck %s

// The scf.for's annotation reaches the back edge's llvm.br as its inherent
// loop_annotation (printed in the op's attribute dictionary without the
// "llvm." prefix), which translation turns into !llvm.loop metadata.
// CHECK: #[[A:.*]] = #llvm.loop_annotation<interleave = #{{.*}}>
// CHECK-LABEL: llvm.func @f
// CHECK: llvm.br ^{{.*}} {loop_annotation = #[[A]]}
// CHECK-NOT: llvm.loop_annotation =
func.func @f(%m: memref<1024xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant 1024 : index
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %y = arith.mulf %x, %x : f32
    memref.store %y, %m[%i] : memref<1024xf32>
  } {llvm.loop_annotation = #llvm.loop_annotation<interleave = <count = 2>>}
  return
}

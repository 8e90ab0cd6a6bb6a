// RUN: ferrule-opt %s --pass-pipeline='builtin.module(widen-bool-buffers)' | FileCheck %s

// i1 buffers (the deallocation pipeline's ownership flags) become i8:
// loads are truncated back to i1, stores extended; signatures follow.
// CHECK-LABEL: func.func private @helper(%arg0: memref<?xi8>)
// CHECK: %[[L:.+]] = memref.load %arg0[%{{.+}}] : memref<?xi8>
// CHECK: %[[N:.+]] = arith.trunci %[[L]] : i8 to i1
// CHECK: %[[X:.+]] = arith.xori %[[N]]
// CHECK: %[[W:.+]] = arith.extui %[[X]] : i1 to i8
// CHECK: memref.store %[[W]], %arg0[%{{.+}}] : memref<?xi8>
// CHECK-LABEL: func.func @caller
// CHECK: memref.alloc() : memref<2xi8>
// CHECK: memref.cast %{{.+}} : memref<2xi8> to memref<?xi8>
// CHECK: call @helper(%{{.+}}) : (memref<?xi8>) -> ()
// CHECK-NOT: xi1>
func.func private @helper(%flags: memref<?xi1>) {
  %c0 = arith.constant 0 : index
  %true = arith.constant true
  %f = memref.load %flags[%c0] : memref<?xi1>
  %n = arith.xori %f, %true : i1
  memref.store %n, %flags[%c0] : memref<?xi1>
  return
}
func.func @caller() {
  %a = memref.alloc() : memref<2xi1>
  %c = memref.cast %a : memref<2xi1> to memref<?xi1>
  call @helper(%c) : (memref<?xi1>) -> ()
  memref.dealloc %a : memref<2xi1>
  return
}

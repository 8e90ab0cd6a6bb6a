// RUN: ferrule-opt %s --pass-pipeline='builtin.module(lower-callbacks)' | FileCheck %s

// Callbacks are pure: of three equal calls one stays, and an unused call of
// another callback goes (with its declaration). The one left reads its
// argument through a read-only buffer, writes its result into a fresh
// buffer, and the declaration takes both and returns nothing.
// CHECK-NOT: @__ferrule_callback_4
// CHECK: func.func private @__ferrule_callback_3(memref<2x3xf64>, memref<3xf64>)
// CHECK-LABEL: func.func @f
// CHECK: %[[IN:.+]] = bufferization.to_buffer %arg0 read_only : tensor<2x3xf64> to memref<2x3xf64>
// CHECK: %[[OUT:.+]] = memref.alloc() : memref<3xf64>
// CHECK: call @__ferrule_callback_3(%[[IN]], %[[OUT]]) : (memref<2x3xf64>, memref<3xf64>) -> ()
// CHECK: %[[T:.+]] = bufferization.to_tensor %[[OUT]] restrict : memref<3xf64> to tensor<3xf64>
// CHECK-NOT: call
// CHECK: %[[S:.+]] = arith.addf %[[T]], %[[T]]
// CHECK: return %[[S]]
func.func private @__ferrule_callback_4(tensor<2x3xf64>) -> tensor<3xf64>
func.func private @__ferrule_callback_3(tensor<2x3xf64>) -> tensor<3xf64>
func.func @f(%x: tensor<2x3xf64>) -> tensor<3xf64> {
  %0 = call @__ferrule_callback_3(%x) : (tensor<2x3xf64>) -> tensor<3xf64>
  %u = call @__ferrule_callback_4(%x) : (tensor<2x3xf64>) -> tensor<3xf64>
  %1 = call @__ferrule_callback_3(%x) : (tensor<2x3xf64>) -> tensor<3xf64>
  %2 = call @__ferrule_callback_3(%x) : (tensor<2x3xf64>) -> tensor<3xf64>
  %3 = arith.addf %0, %1 : tensor<3xf64>
  return %3 : tensor<3xf64>
}

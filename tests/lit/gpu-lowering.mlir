// RUN: ferrule-opt %s --pass-pipeline='builtin.module(gpu-kernel-outlining, gpu.module(convert-scf-to-cf, convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=true index-bitwidth=32}, reconcile-unrealized-casts))' | FileCheck %s

// The GPU half of ferrule.runtime.cuda_compile after its loop mapping: one
// fused pointwise region = one gpu.launch of 256-thread blocks walking a
// grid-stride loop over the linearised index (here 4x256 = 1024 points in
// 4 blocks). Outlining names the kernel after the launch's `function`
// attribute; NVVM lowering with bare pointers makes every memref parameter
// one !llvm.ptr (the launcher passes device pointers), the block size becomes
// nvvm.maxntid, tanh a libdevice call, and index math is 32-bit.

// CHECK-LABEL: func.func @cell
// CHECK: gpu.launch_func @cell_k0::@cell_k0 blocks in (%{{.+}}, %{{.+}}, %{{.+}}) threads in (%{{.+}}, %{{.+}}, %{{.+}}) args(%arg0 : memref<4x256xf32>, %arg1 : memref<4x256xf32>)
// CHECK: gpu.module @cell_k0
// CHECK: llvm.func @__nv_tanhf(f32) -> f32
// CHECK: llvm.func @cell_k0(%{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr)
// CHECK-SAME: gpu.kernel
// CHECK-SAME: nvvm.kernel
// CHECK-SAME: nvvm.maxntid = array<i32: 256, 1, 1>
// CHECK: nvvm.read.ptx.sreg.ctaid.x
// CHECK: nvvm.read.ptx.sreg.nctaid.x
// CHECK: llvm.icmp "slt" %{{.+}}, %{{.+}} : i32
// CHECK: llvm.call @__nv_tanhf
// CHECK-NOT: llvm.call @__nv_tanhf
func.func @cell(%x: memref<4x256xf32>, %y: memref<4x256xf32>) {
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c256 = arith.constant 256 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %n = arith.constant 1024 : index
    %w = arith.constant 256 : index
    %0 = arith.muli %bx, %sx : index
    %start = arith.addi %0, %tx : index
    %stride = arith.muli %gx, %sx : index
    scf.for %i = %start to %n step %stride {
      %col = arith.remui %i, %w : index
      %row = arith.divui %i, %w : index
      %v = memref.load %x[%row, %col] : memref<4x256xf32>
      %t = math.tanh %v : f32
      memref.store %t, %y[%row, %col] : memref<4x256xf32>
    }
    gpu.terminator
  } {function = @cell_k0, module = @cell_k0}
  return
}

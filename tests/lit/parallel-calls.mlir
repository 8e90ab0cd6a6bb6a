// RUN: ferrule-opt %s --pass-pipeline='builtin.module(parallel-calls{threads=4})' | FileCheck %s
// RUN: not ferrule-opt %S/Inputs/team-calls-out.mlir --pass-pipeline='builtin.module(parallel-calls)' 2>&1 | FileCheck %s --check-prefix=CALLS
// CALLS: error: parallel-calls: team function @__ferrule_team_mm0 calls @free: a team function may call nothing

// The call of a team function (tid = 0, nt = 1: the serial meaning) now
// calls its __par wrapper with the same arguments; __par runs the team
// function alone when the process's cap is 1, else packs the arguments
// into 8-byte slots and starts a team of min(4, cap) threads running
// __team, which unpacks them and passes its thread number and team size.

// CHECK-LABEL: llvm.func @__ferrule_team_mm0(
// CHECK-LABEL: llvm.func @f(
// CHECK: llvm.call @__ferrule_team_mm0__par(%arg0, %arg1, %{{.+}}, %{{.+}}) : (!llvm.ptr, i64, i64, i64) -> ()
// CHECK-NOT: llvm.call @__ferrule_team_mm0(
// CHECK: llvm.return
// CHECK-DAG: llvm.func @GOMP_parallel(!llvm.ptr, !llvm.ptr, i32, i32)
// CHECK-DAG: llvm.func @omp_get_thread_num() -> i32
// CHECK-DAG: llvm.func @omp_get_num_threads() -> i32
// CHECK-DAG: llvm.mlir.global external @__ferrule_team_limit() {addr_space = 0 : i32} : i32
// CHECK-LABEL: llvm.func internal @__ferrule_team_mm0__team(%arg0: !llvm.ptr)
// CHECK: %[[P0:.+]] = llvm.getelementptr %arg0[0] : (!llvm.ptr) -> !llvm.ptr, i64
// CHECK: %[[A0:.+]] = llvm.load %[[P0]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[P1:.+]] = llvm.getelementptr %arg0[1] : (!llvm.ptr) -> !llvm.ptr, i64
// CHECK: %[[A1:.+]] = llvm.load %[[P1]] : !llvm.ptr -> i64
// CHECK: %[[T:.+]] = llvm.call @omp_get_thread_num() : () -> i32
// CHECK: %[[N:.+]] = llvm.call @omp_get_num_threads() : () -> i32
// CHECK: %[[T64:.+]] = llvm.sext %[[T]] : i32 to i64
// CHECK: %[[N64:.+]] = llvm.sext %[[N]] : i32 to i64
// CHECK: llvm.call @__ferrule_team_mm0(%[[A0]], %[[A1]], %[[T64]], %[[N64]])
// CHECK-LABEL: llvm.func internal @__ferrule_team_mm0__par(
// CHECK: %[[SLOTS:.+]] = llvm.alloca %{{.+}} x i64
// CHECK: %[[CAP:.+]] = llvm.load %{{.+}} : !llvm.ptr -> i32
// CHECK: %[[MOST:.+]] = llvm.mlir.constant(4 : i32) : i32
// CHECK: %[[THREADS:.+]] = llvm.intr.smin(%[[CAP]], %[[MOST]])
// CHECK: llvm.cond_br
// CHECK: llvm.call @__ferrule_team_mm0(%arg0, %arg1, %{{.+}}, %{{.+}})
// CHECK: llvm.store %arg0, %{{.+}} : !llvm.ptr, !llvm.ptr
// CHECK: llvm.store %arg1, %{{.+}} : i64, !llvm.ptr
// CHECK: %[[FN:.+]] = llvm.mlir.addressof @__ferrule_team_mm0__team
// CHECK: llvm.call @GOMP_parallel(%[[FN]], %[[SLOTS]], %[[THREADS]], %{{.+}})
module {
  llvm.func @__ferrule_team_mm0(%arg0: !llvm.ptr, %arg1: i64, %tid: i64, %nt: i64) {
    llvm.return
  }
  llvm.func @f(%arg0: !llvm.ptr, %arg1: i64) {
    %0 = llvm.mlir.constant(0 : i64) : i64
    %1 = llvm.mlir.constant(1 : i64) : i64
    llvm.call @__ferrule_team_mm0(%arg0, %arg1, %0, %1) : (!llvm.ptr, i64, i64, i64) -> ()
    llvm.return
  }
}

// RUN: ferrule-opt %s --split-input-file --pass-pipeline='builtin.module(team-pointwise{threads=2})' | FileCheck %s

// A large pointwise loop nest (64x1024 iterations x 4 body ops) becomes a
// call of a team function with tid = 0, nt = 1; the team function runs the
// same generic on rows [64*tid/nt, 64*(tid+1)/nt) of every operand indexed
// by d0 (the bias, indexed by d1 only, goes whole). The second, identical
// nest shares the team function; the small one stays.
// CHECK-LABEL: func.func @cell
// CHECK: call @__ferrule_team_pointwise0(%arg0, %arg1, %arg2, %c0{{.*}}, %c1{{.*}}) : (memref<64x1024xf32>, memref<1024xf32>, memref<64x1024xf32>, index, index) -> ()
// CHECK: call @__ferrule_team_pointwise0(%arg2, %arg1, %arg3, %c0{{.*}}, %c1{{.*}})
// CHECK: linalg.generic
// CHECK-SAME: ins(%arg4 : memref<2x8xf32>)
// CHECK: return
// CHECK-LABEL: func.func private @__ferrule_team_pointwise0(%arg0: memref<64x1024xf32>, %arg1: memref<1024xf32>, %arg2: memref<64x1024xf32>, %arg3: index, %arg4: index)
// CHECK: %[[E:.+]] = arith.constant 64 : index
// CHECK: %[[LO:.+]] = arith.divui {{.*}}, %arg4
// CHECK: %[[HI:.+]] = arith.divui {{.*}}, %arg4
// CHECK: %[[ROWS:.+]] = arith.subi %[[HI]], %[[LO]]
// CHECK: %[[X:.+]] = memref.subview %arg0[%[[LO]], 0] [%[[ROWS]], 1024] [1, 1] : memref<64x1024xf32> to memref<?x1024xf32, strided<[1024, 1], offset: ?>>
// CHECK: %[[Y:.+]] = memref.subview %arg2[%[[LO]], 0] [%[[ROWS]], 1024] [1, 1]
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[X]], %arg1 : memref<?x1024xf32, strided<[1024, 1], offset: ?>>, memref<1024xf32>) outs(%[[Y]]
// CHECK: math.exp
// CHECK: return
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>
func.func @cell(%x: memref<64x1024xf32>, %b: memref<1024xf32>, %y: memref<64x1024xf32>,
                %z: memref<64x1024xf32>, %s: memref<2x8xf32>, %t: memref<2x8xf32>) {
  linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %b : memref<64x1024xf32>, memref<1024xf32>) outs(%y : memref<64x1024xf32>) {
  ^bb0(%xi: f32, %bi: f32, %o: f32):
    %0 = arith.addf %xi, %bi : f32
    %1 = math.exp %0 : f32
    %2 = arith.mulf %1, %xi : f32
    linalg.yield %2 : f32
  }
  linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y, %b : memref<64x1024xf32>, memref<1024xf32>) outs(%z : memref<64x1024xf32>) {
  ^bb0(%xi: f32, %bi: f32, %o: f32):
    %0 = arith.addf %xi, %bi : f32
    %1 = math.exp %0 : f32
    %2 = arith.mulf %1, %xi : f32
    linalg.yield %2 : f32
  }
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%s : memref<2x8xf32>) outs(%t : memref<2x8xf32>) {
  ^bb0(%si: f32, %o: f32):
    %0 = math.exp %si : f32
    linalg.yield %0 : f32
  }
  return
}

// -----

// Not split: a reduction (iterator d1 is a reduction), an output that does
// not use d0 (threads would write the same elements), and a body that
// uses a value from outside it that is not a constant.
// CHECK-LABEL: func.func @kept
// CHECK-NOT: call
// CHECK-NOT: __ferrule_team
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (d1)>
#rows = affine_map<(d0, d1) -> (d0)>
func.func @kept(%x: memref<64x1024xf32>, %r: memref<64xf32>, %c: memref<1024xf32>,
                %y: memref<64x1024xf32>, %i: index) {
  linalg.generic {indexing_maps = [#id2, #rows], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<64x1024xf32>) outs(%r : memref<64xf32>) {
  ^bb0(%xi: f32, %acc: f32):
    %0 = math.exp %xi : f32
    %1 = arith.addf %acc, %0 : f32
    %2 = arith.mulf %1, %1 : f32
    linalg.yield %2 : f32
  }
  linalg.generic {indexing_maps = [#id2, #col], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<64x1024xf32>) outs(%c : memref<1024xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %0 = math.exp %xi : f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.mulf %1, %0 : f32
    linalg.yield %2 : f32
  }
  %k = memref.load %r[%i] : memref<64xf32>
  linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<64x1024xf32>) outs(%y : memref<64x1024xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %0 = math.exp %xi : f32
    %1 = arith.mulf %0, %k : f32
    %2 = arith.mulf %1, %0 : f32
    linalg.yield %2 : f32
  }
  return
}

// -----

// A constant the body uses from outside (canonicalize hoists them) is
// recreated in the team function; the key includes its value, so a nest
// with another constant gets a team function of its own.
// CHECK-LABEL: func.func @constants
// CHECK: call @__ferrule_team_pointwise0(%arg0, %arg1,
// CHECK: call @__ferrule_team_pointwise1(%arg0, %arg2,
// CHECK-LABEL: func.func private @__ferrule_team_pointwise0
// CHECK: %[[K:.+]] = arith.constant 2.000000e+00 : f32
// CHECK: linalg.generic
// CHECK: arith.mulf %{{.+}}, %[[K]] : f32
// CHECK-LABEL: func.func private @__ferrule_team_pointwise1
// CHECK: arith.constant 3.000000e+00 : f32
#id3 = affine_map<(d0, d1) -> (d0, d1)>
func.func @constants(%x: memref<64x1024xf32>, %y: memref<64x1024xf32>, %z: memref<64x1024xf32>) {
  %k = arith.constant 2.0 : f32
  %l = arith.constant 3.0 : f32
  linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<64x1024xf32>) outs(%y : memref<64x1024xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %0 = math.exp %xi : f32
    %1 = arith.mulf %0, %k : f32
    %2 = arith.mulf %1, %0 : f32
    linalg.yield %2 : f32
  }
  linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<64x1024xf32>) outs(%z : memref<64x1024xf32>) {
  ^bb0(%xi: f32, %o: f32):
    %0 = math.exp %xi : f32
    %1 = arith.mulf %0, %l : f32
    %2 = arith.mulf %1, %0 : f32
    linalg.yield %2 : f32
  }
  return
}

// -----

// An operand read from a constant global is read again inside the team
// function, not passed, so LLVM sees its value there as in the caller.
// CHECK-LABEL: func.func @global_operand
// CHECK: call @__ferrule_team_pointwise0(%arg0, %arg1, %c0{{.*}}, %c1{{.*}}) : (memref<65536xf16>, memref<65536xf32>, index, index) -> ()
// CHECK-LABEL: func.func private @__ferrule_team_pointwise0
// CHECK: %[[G:.+]] = memref.get_global @__constant_xf32 : memref<f32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.+}}, %[[G]] :
memref.global "private" constant @__constant_xf32 : memref<f32> = dense<-0.000000e+00> {alignment = 64 : i64}
#v = affine_map<(d0) -> (d0)>
#s = affine_map<(d0) -> ()>
func.func @global_operand(%arg0: memref<65536xf16>, %arg1: memref<65536xf32>) {
  %0 = memref.get_global @__constant_xf32 : memref<f32>
  linalg.generic {indexing_maps = [#v, #s, #v], iterator_types = ["parallel"]} ins(%arg0, %0 : memref<65536xf16>, memref<f32>) outs(%arg1 : memref<65536xf32>) {
  ^bb0(%in: f16, %in_0: f32, %out: f32):
    %1 = arith.extf %in : f16 to f32
    %2 = arith.addf %1, %in_0 : f32
    linalg.yield %2 : f32
  }
  return
}

// RUN: ferrule-opt %s --pass-pipeline='builtin.module(expand-math)' | FileCheck %s

// exp: Cody-Waite reduction, polynomial, scaling by 2^n built from bits.
// CHECK-LABEL: func.func @exp_f32
// CHECK-NOT: math.exp
// CHECK: %[[T:.*]] = arith.addf %{{.*}}, %{{.*}} : f32
// CHECK: arith.bitcast %[[T]] : f32 to i32
// CHECK: arith.mulf %{{.*}}, %{{.*}} fastmath<contract> : f32
// CHECK: arith.shli %{{.*}}, %{{.*}} : i32
// CHECK: arith.bitcast %{{.*}} : i32 to f32
// CHECK-NOT: math.exp
// CHECK: return %{{.*}} : f32
func.func @exp_f32(%x: f32) -> f32 {
  %0 = math.exp %x : f32
  return %0 : f32
}

// log: special cases become selects against +inf, -inf and NaN.
// CHECK-LABEL: func.func @log_f32
// CHECK-NOT: math.log
// CHECK: %[[INF:.*]] = arith.constant 0x7F800000 : f32
// CHECK: arith.cmpf oeq, %arg0, %[[INF]] : f32
// CHECK: %[[MINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: arith.select %{{.*}}, %[[MINF]], %{{.*}} : f32
// CHECK: %[[NEG:.*]] = arith.cmpf ult, %arg0, %{{.*}} : f32
// CHECK: %[[NAN:.*]] = arith.constant 0x7FC00000 : f32
// CHECK: %[[R:.*]] = arith.select %[[NEG]], %[[NAN]], %{{.*}} : f32
// CHECK: return %[[R]] : f32
func.func @log_f32(%x: f32) -> f32 {
  %0 = math.log %x : f32
  return %0 : f32
}

// Vectors are expanded lane-wise, with splat constants.
// CHECK-LABEL: func.func @tanh_vector
// CHECK-NOT: math.tanh
// CHECK: math.absf %arg0 : vector<8xf32>
// CHECK: arith.constant dense<{{.*}}> : vector<8xi32>
// CHECK: arith.divf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK: %[[R:.*]] = math.copysign %{{.*}}, %arg0 : vector<8xf32>
// CHECK-NOT: math.tanh
// CHECK: return %[[R]] : vector<8xf32>
func.func @tanh_vector(%x: vector<8xf32>) -> vector<8xf32> {
  %0 = math.tanh %x : vector<8xf32>
  return %0 : vector<8xf32>
}

// sin/cos/erf run in f64 and round once at the end. A scalar sin/cos
// reduces arguments below 120 inline and calls out for larger ones; the
// callee declares masked vector variants, so loops still vectorise.
// CHECK-LABEL: func.func @sin_cos_erf
// CHECK-NOT: math.sin
// CHECK-NOT: math.cos
// CHECK-NOT: math.erf
// CHECK: arith.extf %{{.*}} : f32 to f64
// CHECK: %[[BIG:.*]] = arith.cmpf oge, %{{.*}}, %{{.*}} : f32
// CHECK: scf.if %[[BIG]] -> (f32)
// CHECK: func.call @__ferrule_trig_big_0(%{{.*}}) : (f32) -> f32
// CHECK: func.call @__ferrule_trig_big_1(%{{.*}}) : (f32) -> f32
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK-NOT: math.sin
// CHECK-NOT: math.cos
// CHECK-NOT: math.erf
// CHECK: return
func.func @sin_cos_erf(%x: f32) -> (f32, f32, f32) {
  %0 = math.sin %x : f32
  %1 = math.cos %x : f32
  %2 = math.erf %x : f32
  return %0, %1, %2 : f32, f32, f32
}

// All handled f32 ops disappear.
// CHECK-LABEL: func.func @all_f32
// CHECK-NOT: math.exp
// CHECK-NOT: math.exp2
// CHECK-NOT: math.expm1
// CHECK-NOT: math.log
// CHECK-NOT: math.log2
// CHECK-NOT: math.log10
// CHECK-NOT: math.log1p
// CHECK: return
func.func @all_f32(%x: f32) -> (f32, f32, f32, f32, f32, f32) {
  %0 = math.exp2 %x : f32
  %1 = math.expm1 %x : f32
  %2 = math.log2 %x : f32
  %3 = math.log10 %x : f32
  %4 = math.log1p %x : f32
  %5 = math.exp %x : f32
  return %0, %1, %2, %3, %4, %5 : f32, f32, f32, f32, f32, f32
}

// Ops inside loops and linalg.generic bodies are found too.
// CHECK-LABEL: func.func @nested
// CHECK: scf.for
// CHECK-NOT: math.exp
// CHECK: arith.shli
// CHECK: memref.store
// CHECK: linalg.generic
// CHECK-NOT: math.log
// CHECK: arith.bitcast
// CHECK: linalg.yield
func.func @nested(%m: memref<16xf32>, %t: tensor<16xf32>) -> tensor<16xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %v = memref.load %m[%i] : memref<16xf32>
    %e = math.exp %v : f32
    memref.store %e, %m[%i] : memref<16xf32>
  }
  %init = tensor.empty() : tensor<16xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]}
      ins(%t : tensor<16xf32>) outs(%init : tensor<16xf32>) {
  ^bb0(%a: f32, %b: f32):
    %l = math.log %a : f32
    linalg.yield %l : f32
  } -> tensor<16xf32>
  return %r : tensor<16xf32>
}

// f64, tensor-typed and unhandled ops are left alone.
// CHECK-LABEL: func.func @untouched
// CHECK: math.exp %arg0 : f64
// CHECK: math.exp %arg1 : tensor<4xf32>
// CHECK: math.sqrt %arg2 : f32
// CHECK: math.atan %arg2 : f32
// CHECK: math.tanh %arg3 : vector<[4]xf32>
// CHECK-NOT: arith.bitcast
// CHECK: return
func.func @untouched(%d: f64, %t: tensor<4xf32>, %x: f32, %s: vector<[4]xf32>)
    -> (f64, tensor<4xf32>, f32, f32, vector<[4]xf32>) {
  %0 = math.exp %d : f64
  %1 = math.exp %t : tensor<4xf32>
  %2 = math.sqrt %x : f32
  %3 = math.atan %x : f32
  %4 = math.tanh %s : vector<[4]xf32>
  return %0, %1, %2, %3, %4 : f64, tensor<4xf32>, f32, f32, vector<[4]xf32>
}

// The out-of-line large-argument functions: public (LLVM must keep the
// variants until its vectoriser runs), noinline, with variants of 2..16
// lanes that return at once when no lane of the mask is set.
// CHECK-LABEL: func.func @__ferrule_trig_big_0(
// CHECK-SAME: %{{.*}}: f32) -> f32
// CHECK-SAME: passthrough = ["noinline", ["vector-function-abi-variant", "_ZGV_LLVM_M2v___ferrule_trig_big_0(__ferrule_trig_big_0_v2),{{.*}}_ZGV_LLVM_M16v___ferrule_trig_big_0(__ferrule_trig_big_0_v16)"]]
// CHECK-NOT: scf.if
// CHECK: return
// CHECK-LABEL: func.func @__ferrule_trig_big_0_v8(
// CHECK-SAME: %{{.*}}: vector<8xf32>, %[[M:.*]]: vector<8xi1>) -> vector<8xf32>
// CHECK: %[[ANY:.*]] = vector.reduction <or>, %[[M]] : vector<8xi1> into i1
// CHECK: scf.if %[[ANY]] -> (vector<8xf32>)
// CHECK: arith.muli %{{.*}} : vector<8xi64>
// CHECK: } else {
// CHECK: scf.yield %{{.*}} : vector<8xf32>
// CHECK-LABEL: func.func @__ferrule_trig_big_1(

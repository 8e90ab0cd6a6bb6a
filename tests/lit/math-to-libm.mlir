// RUN: ferrule-opt %s --pass-pipeline='builtin.module(math-to-libm)' | FileCheck %s

// f64 log1p and pow call the C library, and so does f32 powf (its
// exp(y * log x) expansion is wrong for a negative base); other f32 math is
// left alone (expand-math's job).
// CHECK-DAG: func.func private @log1p(f64) -> f64
// CHECK-DAG: func.func private @pow(f64, f64) -> f64
// CHECK-DAG: func.func private @powf(f32, f32) -> f32
// CHECK-DAG: func.func private @atanhf(f32) -> f32
// CHECK-DAG: func.func private @atan2f(f32, f32) -> f32
// CHECK-DAG: func.func private @sinh(f64) -> f64
// CHECK-DAG: func.func private @tanf(f32) -> f32
// CHECK-LABEL: func.func @f
// CHECK: call @log1p(%arg0) : (f64) -> f64
// CHECK: call @pow(%arg0, %arg0) : (f64, f64) -> f64
// CHECK: math.log1p %arg1 : f32
// CHECK: call @powf(%arg1, %arg1) : (f32, f32) -> f32
// CHECK-NOT: math.powf
func.func @f(%x: f64, %y: f32) -> (f64, f64, f32, f32) {
  %0 = math.log1p %x : f64
  %1 = math.powf %x, %x : f64
  %2 = math.log1p %y : f32
  %3 = math.powf %y, %y : f32
  return %0, %1, %2, %3 : f64, f64, f32, f32
}

// @g: the inverse trigonometric and hyperbolic functions call the C library
// in both precisions (upstream's exp/log expansions lose precision near 0);
// rounding stays (LLVM intrinsics). Their declarations are among the above.
// CHECK-LABEL: func.func @g
// CHECK: call @atanhf(%arg0) : (f32) -> f32
// CHECK: call @atan2f(%arg0, %arg0) : (f32, f32) -> f32
// CHECK: call @sinh(%arg1) : (f64) -> f64
// CHECK: call @tanf(%arg0) : (f32) -> f32
// CHECK: math.floor %arg0 : f32
func.func @g(%x: f32, %y: f64) -> (f32, f32, f64, f32, f32) {
  %0 = math.atanh %x : f32
  %1 = math.atan2 %x, %x : f32
  %2 = math.sinh %y : f64
  %3 = math.tan %x : f32
  %4 = math.floor %x : f32
  return %0, %1, %2, %3, %4 : f32, f32, f64, f32, f32
}

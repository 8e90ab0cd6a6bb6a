// RUN: ferrule-opt %s --pass-pipeline='builtin.module(math-to-libm)' | FileCheck %s

// f64 log1p calls the C library; f32 is left alone (expand-math's job).
// CHECK-DAG: func.func private @log1p(f64) -> f64
// CHECK-DAG: func.func private @pow(f64, f64) -> f64
// CHECK-LABEL: func.func @f
// CHECK: call @log1p(%arg0) : (f64) -> f64
// CHECK: call @pow(%arg0, %arg0) : (f64, f64) -> f64
// CHECK: math.log1p %arg1 : f32
func.func @f(%x: f64, %y: f32) -> (f64, f64, f32) {
  %0 = math.log1p %x : f64
  %1 = math.powf %x, %x : f64
  %2 = math.log1p %y : f32
  return %0, %1, %2 : f64, f64, f32
}

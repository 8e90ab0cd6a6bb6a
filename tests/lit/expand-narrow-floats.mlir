// RUN: ferrule-opt %s --pass-pipeline='builtin.module(expand-narrow-floats)' | FileCheck %s

// bf16 -> f32: the bf16 bits are the high half of the f32.
// CHECK-LABEL: func.func @ext_bf16
// CHECK-NOT: arith.extf
// CHECK: %[[B:.*]] = arith.bitcast %arg0 : bf16 to i16
// CHECK: %[[W:.*]] = arith.extui %[[B]] : i16 to i32
// CHECK: %[[S:.*]] = arith.shli %[[W]], %{{.*}} : i32
// CHECK: %[[R:.*]] = arith.bitcast %[[S]] : i32 to f32
// CHECK: return %[[R]] : f32
func.func @ext_bf16(%x: bf16) -> f32 {
  %0 = arith.extf %x : bf16 to f32
  return %0 : f32
}

// f32 -> bf16: round to nearest even by adding 0x7FFF plus the kept lsb;
// NaN is kept quiet.
// CHECK-LABEL: func.func @trunc_bf16
// CHECK-NOT: arith.truncf
// CHECK: arith.cmpf uno, %arg0, %arg0 : f32
// CHECK: arith.constant 32767 : i32
// CHECK: arith.shrui
// CHECK: arith.select
// CHECK: %[[T:.*]] = arith.trunci %{{.*}} : i32 to i16
// CHECK: %[[R:.*]] = arith.bitcast %[[T]] : i16 to bf16
// CHECK: return %[[R]] : bf16
func.func @trunc_bf16(%x: f32) -> bf16 {
  %0 = arith.truncf %x : f32 to bf16
  return %0 : bf16
}

// f16 -> f32: normal, inf/NaN and subnormal (mantissa * 2^-24) cases selected.
// CHECK-LABEL: func.func @ext_f16
// CHECK-NOT: arith.extf
// CHECK: arith.bitcast %arg0 : f16 to i16
// CHECK: arith.uitofp %{{.*}} : i32 to f32
// CHECK: arith.select
// CHECK: arith.select
// CHECK: arith.bitcast %{{.*}} : i32 to f32
func.func @ext_f16(%x: f16) -> f32 {
  %0 = arith.extf %x : f16 to f32
  return %0 : f32
}

// f32 -> f16 on vectors: lane-wise, with splat constants; subnormals rounded
// by adding 2^23 in f32, overflow to inf (0x7C00 = 31744), NaN to 0x7E00 (32256).
// CHECK-LABEL: func.func @trunc_f16_vector
// CHECK-NOT: arith.truncf
// CHECK: arith.cmpf uno, %arg0, %arg0 : vector<4xf32>
// CHECK: arith.constant dense<0x4B000000> : vector<4xf32>
// CHECK: arith.fptoui %{{.*}} : vector<4xf32> to vector<4xi32>
// CHECK: arith.constant dense<31744> : vector<4xi32>
// CHECK: arith.constant dense<32256> : vector<4xi32>
// CHECK: arith.trunci %{{.*}} : vector<4xi32> to vector<4xi16>
// CHECK: arith.bitcast %{{.*}} : vector<4xi16> to vector<4xf16>
func.func @trunc_f16_vector(%x: vector<4xf32>) -> vector<4xf16> {
  %0 = arith.truncf %x : vector<4xf32> to vector<4xf16>
  return %0 : vector<4xf16>
}

// An integer to bf16 (canonicalisation folds truncf(sitofp x) into one op):
// to f32, then the written-out truncation.
// CHECK-LABEL: func.func @sitofp_bf16
// CHECK-NOT: arith.sitofp %arg0 : i32 to bf16
// CHECK: %[[W:.*]] = arith.sitofp %arg0 : i32 to f32
// CHECK: arith.cmpf uno, %[[W]], %[[W]] : f32
// CHECK: arith.bitcast %{{.*}} : i16 to bf16
func.func @sitofp_bf16(%x: i32) -> bf16 {
  %0 = arith.sitofp %x : i32 to bf16
  return %0 : bf16
}

// bf16 to an integer, on vectors: the written-out extension, then from f32.
// CHECK-LABEL: func.func @fptoui_bf16_vector
// CHECK: arith.bitcast %arg0 : vector<4xbf16> to vector<4xi16>
// CHECK: %[[F:.*]] = arith.bitcast %{{.*}} : vector<4xi32> to vector<4xf32>
// CHECK: arith.fptoui %[[F]] : vector<4xf32> to vector<4xi32>
func.func @fptoui_bf16_vector(%x: vector<4xbf16>) -> vector<4xi32> {
  %0 = arith.fptoui %x : vector<4xbf16> to vector<4xi32>
  return %0 : vector<4xi32>
}

// Other casts are left alone.
// CHECK-LABEL: func.func @f64_untouched
// CHECK: arith.extf %arg0 : f32 to f64
// CHECK: arith.truncf %{{.*}} : f64 to f16
func.func @f64_untouched(%x: f32) -> f16 {
  %0 = arith.extf %x : f32 to f64
  %1 = arith.truncf %0 : f64 to f16
  return %1 : f16
}

// RUN: ferrule-opt %s --pass-pipeline='builtin.module(expand-narrow-floats{f16=false})' | FileCheck %s --check-prefix=BF16ONLY
// With f16=false (a host with F16C) float16 conversions are left to LLVM.
// BF16ONLY-LABEL: func.func @ext_bf16
// BF16ONLY-NOT: arith.extf
// BF16ONLY-LABEL: func.func @ext_f16
// BF16ONLY: arith.extf %arg0 : f16 to f32

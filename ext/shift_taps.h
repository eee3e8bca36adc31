// Axis geometry of the RubiksShift operator, free of ATen so that the CPU and
// CUDA kernels share it (and `nvcc -c` can compile-check it without torch).
//
// Along one axis the interpolated shift is a 2-tap stencil with weights that
// are constant per channel: output index i reads the input at
//   i*stride - pad + floor(shift)      with weight 1 - frac(shift)
//   i*stride - pad + floor(shift) + 1  with weight frac(shift)
// (quantized mode: one tap at i*stride - pad + floor(shift + 0.5), weight 1).
// A source index outside [0, src_len) contributes zero (zero padding).
//
// The adjoint of that gather (used for the input gradient) is again a 2-tap
// stencil: input index u receives from output index (u - off)/stride when that
// division is exact. For stride 1 it is a plain gather with negated offsets.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RUBIKS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RUBIKS_HOST_DEVICE inline
#endif

namespace rubiks {

// Floor division for possibly negative numerators (denominator > 0).
RUBIKS_HOST_DEVICE int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// Output length of the shift along one axis: (n + 2p - 1) // s + 1.
RUBIKS_HOST_DEVICE int64_t shift_output_size(int64_t n, int64_t stride, int64_t pad) {
  return floor_div(n + 2 * pad - 1, stride) + 1;
}

struct AxisTaps {
  int64_t dst_len = 0;  // indices produced along this axis
  int64_t src_len = 0;  // indices read along this axis
  int64_t stride = 1;
  int64_t off[2] = {0, 0};
  double weight[2] = {1.0, 0.0};
  int ntaps = 1;
  bool adjoint = false;  // false: src = i*stride + off; true: src = (i - off) / stride

  // Source index of tap `t` for destination index `i`, or -1 if it reads zero.
  RUBIKS_HOST_DEVICE int64_t source(int t, int64_t i) const {
    if (!adjoint) {
      const int64_t j = i * stride + off[t];
      return (j >= 0 && j < src_len) ? j : -1;
    }
    const int64_t d = i - off[t];
    if (d < 0 || d % stride != 0) return -1;
    const int64_t j = d / stride;
    return j < src_len ? j : -1;
  }

  // For the gather form: the destination range [lo, hi) in which tap t reads
  // inside the source (so the kernel loops over it without bounds checks).
  RUBIKS_HOST_DEVICE void valid_range(int t, int64_t* lo, int64_t* hi) const {
    // need 0 <= i*stride + off < src_len
    int64_t a = -floor_div(off[t], stride);  // ceil(-off / stride)
    int64_t b = floor_div(src_len - 1 - off[t], stride) + 1;
    *lo = a < 0 ? 0 : a;
    *hi = b > dst_len ? dst_len : b;
    if (*hi < *lo) *hi = *lo;
  }
};

// Taps of the forward gather along one axis. With `quantize` the shift is
// rounded half-up and a single tap is used.
RUBIKS_HOST_DEVICE AxisTaps forward_taps(int64_t src_len, int64_t stride, int64_t pad,
                                         double shift, bool quantize) {
  AxisTaps a;
  a.src_len = src_len;
  a.dst_len = shift_output_size(src_len, stride, pad);
  a.stride = stride;
  if (quantize) {
    a.ntaps = 1;
    a.off[0] = static_cast<int64_t>(floor(shift + 0.5)) - pad;
    a.off[1] = a.off[0];
    a.weight[0] = 1.0;
    a.weight[1] = 0.0;
  } else {
    const double f = floor(shift);
    a.ntaps = 2;
    a.off[0] = static_cast<int64_t>(f) - pad;
    a.off[1] = a.off[0] + 1;
    a.weight[1] = shift - f;
    a.weight[0] = 1.0 - a.weight[1];
  }
  return a;
}

// Taps of the adjoint (input-gradient) stencil of `fwd`.
RUBIKS_HOST_DEVICE AxisTaps adjoint_taps(const AxisTaps& fwd) {
  AxisTaps a = fwd;
  a.dst_len = fwd.src_len;
  a.src_len = fwd.dst_len;
  if (fwd.stride == 1) {  // u reads the gradient at u - off: a gather again
    a.adjoint = false;
    a.off[0] = -fwd.off[0];
    a.off[1] = -fwd.off[1];
  } else {
    a.adjoint = true;
  }
  return a;
}

}  // namespace rubiks

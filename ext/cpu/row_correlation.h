// The shift gradient's inner work: the correlations of one gradient row with
// each of its (at most 4) source rows at the channel's two W-tap offsets,
//   dots[r][t] = sum_k g[k] * row_r[k*stride + off[t]]   (k where tap t reads inside the row),
// all 2 x rows of them in one pass over the row. The interior (both taps
// inside) is one unit-stride loop with register accumulators the compiler
// vectorises; the few edge elements, where one tap reads outside, are summed
// separately. This replaces one reduction loop per (row, tap), which re-read
// the gradient row eight times and paid eight loop set-ups and horizontal sums.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../shift_taps.h"

namespace rubiks {

// The W taps of a channel with each tap's in-bounds destination range and the
// range [lo, hi) where both taps read inside the row.
struct CorrelationTaps {
  const AxisTaps& ax;
  int64_t tap_lo[2] = {0, 0}, tap_hi[2] = {0, 0};
  int64_t lo = 0, hi = 0;
  explicit CorrelationTaps(const AxisTaps& a) : ax(a) {
    for (int t = 0; t < a.ntaps; ++t) a.valid_range(t, &tap_lo[t], &tap_hi[t]);
    lo = tap_lo[0];
    hi = tap_hi[0];
    if (a.ntaps == 2) {
      lo = std::max(lo, tap_lo[1]);
      hi = std::min(hi, tap_hi[1]);
    }
    hi = std::max(hi, lo);
  }
};

namespace detail {

// sum_k g[k] * src[k*s + off] for k in [lo, hi).
template <typename T>
inline T dot_strided(const T* g, const T* src, int64_t s, int64_t off, int64_t lo, int64_t hi) {
  T acc = 0;
  for (int64_t k = lo; k < hi; ++k) acc += g[k] * src[k * s + off];
  return acc;
}

// Interior of R rows, unit stride, two taps d apart: dots[r][0] += g . row_r[off + k],
// dots[r][1] += g . row_r[off + d + k] for k in [lo, hi).
template <typename T, int R>
inline void correlate_interior(const T* __restrict g, const T* const* rows, int64_t off, int64_t d,
                               int64_t lo, int64_t hi, T (*dots)[2]) {
  const T* __restrict p0 = rows[0] + off;
  const T* __restrict p1 = rows[R > 1 ? 1 : 0] + off;
  const T* __restrict p2 = rows[R > 2 ? 2 : 0] + off;
  const T* __restrict p3 = rows[R > 3 ? 3 : 0] + off;
  T a0 = 0, b0 = 0, a1 = 0, b1 = 0, a2 = 0, b2 = 0, a3 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, b0, a1, b1, a2, b2, a3, b3)
  for (int64_t k = lo; k < hi; ++k) {
    const T gk = g[k];
    a0 += gk * p0[k];
    b0 += gk * p0[k + d];
    if (R > 1) {
      a1 += gk * p1[k];
      b1 += gk * p1[k + d];
    }
    if (R > 2) {
      a2 += gk * p2[k];
      b2 += gk * p2[k + d];
    }
    if (R > 3) {
      a3 += gk * p3[k];
      b3 += gk * p3[k + d];
    }
  }
  const T a[4] = {a0, a1, a2, a3}, b[4] = {b0, b1, b2, b3};
  for (int r = 0; r < R; ++r) {
    dots[r][0] += a[r];
    dots[r][1] += b[r];
  }
}

template <typename T>
inline void correlate_interior_rows(const T* g, const T* const* rows, int count, int64_t off,
                                    int64_t d, int64_t lo, int64_t hi, T (*dots)[2]) {
  switch (count) {
    case 1: return correlate_interior<T, 1>(g, rows, off, d, lo, hi, dots);
    case 2: return correlate_interior<T, 2>(g, rows, off, d, lo, hi, dots);
    case 3: return correlate_interior<T, 3>(g, rows, off, d, lo, hi, dots);
    default: return correlate_interior<T, 4>(g, rows, off, d, lo, hi, dots);
  }
}

}  // namespace detail

// dots[r][t] for the `count` source rows of the gradient row g (taps absent in
// ax, i.e. t >= ax.ntaps, give 0).
template <typename T>
inline void correlate_row(const T* g, const T* const* rows, int count, const CorrelationTaps& ct,
                          T (*dots)[2]) {
  const AxisTaps& ax = ct.ax;
  for (int r = 0; r < count; ++r) dots[r][0] = dots[r][1] = 0;
  if (count == 0) return;
  const bool fused = ax.stride == 1 && ax.ntaps == 2 && ct.lo < ct.hi;
  for (int t = 0; t < ax.ntaps; ++t) {
    // the tap's range less the fused interior (all of it when nothing is fused)
    const int64_t cut_lo = fused ? ct.lo : ct.tap_hi[t], cut_hi = fused ? ct.hi : ct.tap_hi[t];
    for (int r = 0; r < count; ++r) {
      dots[r][t] += detail::dot_strided(g, rows[r], ax.stride, ax.off[t], ct.tap_lo[t],
                                        std::min(ct.tap_hi[t], cut_lo)) +
                    detail::dot_strided(g, rows[r], ax.stride, ax.off[t],
                                        std::max(ct.tap_lo[t], cut_hi), ct.tap_hi[t]);
    }
  }
  if (fused)
    detail::correlate_interior_rows(g, rows, count, ax.off[0], ax.off[1] - ax.off[0], ct.lo, ct.hi,
                                    dots);
}

}  // namespace rubiks

// One destination row of the shift stencil in a single pass: the weighted sum
// of at most 4 source rows (2 T x 2 H taps), each read with the channel's W
// taps. Writing every element once (instead of zero-fill plus one
// read-modify-write pass per source row) is what makes the forward and the
// stride-1 input gradient cheap on CPU; an integer shift (RS-Q, converted
// RS-AQ) is a plain copy of the row at an offset, no arithmetic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../shift_taps.h"

namespace rubiks {

// The source rows of one destination row and their T x H weights.
template <typename T>
struct RowSources {
  const T* row[4];
  T weight[4];
  int count = 0;

  void add(const T* r, double w) {
    row[count] = r;
    weight[count] = static_cast<T>(w);
    ++count;
  }
};

// A gather-form W axis (src index = k*stride + off[t]) with the destination
// range [lo, hi) in which every tap reads inside the source row.
struct GatherTaps {
  const AxisTaps& ax;
  int64_t lo = 0, hi = 0;
  explicit GatherTaps(const AxisTaps& a) : ax(a) {
    hi = a.dst_len;
    for (int t = 0; t < a.ntaps; ++t) {
      int64_t l, h;
      a.valid_range(t, &l, &h);
      lo = std::max(lo, l);
      hi = std::min(hi, h);
    }
    hi = std::max(hi, lo);
  }
};

namespace detail {

// out[k] = sum_r a[r] * row_r[k*s + off] (+ b[r] * row_r[k*s + off + d]) on [lo, hi), R rows.
template <typename T, int R, bool TwoTaps>
inline void gather_interior(T* __restrict out, const RowSources<T>& rs, T w0, T w1, int64_t s,
                            int64_t off, int64_t d, int64_t lo, int64_t hi) {
  const T* __restrict p[R];
  T a[R], b[R];
  for (int r = 0; r < R; ++r) {
    p[r] = rs.row[r] + off;
    a[r] = rs.weight[r] * w0;
    b[r] = rs.weight[r] * w1;
  }
  if (s == 1) {
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) {
      T acc = 0;
      for (int r = 0; r < R; ++r) {
        acc += a[r] * p[r][k];
        if (TwoTaps) acc += b[r] * p[r][k + d];
      }
      out[k] = acc;
    }
  } else if (s == 2) {  // a constant stride: vectorised with loads and shuffles (a runtime one is not)
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) {
      T acc = 0;
      for (int r = 0; r < R; ++r) {
        acc += a[r] * p[r][2 * k];
        if (TwoTaps) acc += b[r] * p[r][2 * k + d];
      }
      out[k] = acc;
    }
  } else {
    for (int64_t k = lo; k < hi; ++k) {
      T acc = 0;
      for (int r = 0; r < R; ++r) {
        acc += a[r] * p[r][k * s];
        if (TwoTaps) acc += b[r] * p[r][k * s + d];
      }
      out[k] = acc;
    }
  }
}

template <typename T, bool TwoTaps>
inline void gather_interior_rows(T* out, const RowSources<T>& rs, T w0, T w1, int64_t s, int64_t off,
                                 int64_t d, int64_t lo, int64_t hi) {
  switch (rs.count) {
    case 1: return gather_interior<T, 1, TwoTaps>(out, rs, w0, w1, s, off, d, lo, hi);
    case 2: return gather_interior<T, 2, TwoTaps>(out, rs, w0, w1, s, off, d, lo, hi);
    case 3: return gather_interior<T, 3, TwoTaps>(out, rs, w0, w1, s, off, d, lo, hi);
    default: return gather_interior<T, 4, TwoTaps>(out, rs, w0, w1, s, off, d, lo, hi);
  }
}

}  // namespace detail

// The edges of gather_row: out[k] for k in [0, lo) and [hi, dst_len), where some W tap reads outside
// the row (checked per element).
template <typename T>
inline void gather_edges(T* __restrict out, const RowSources<T>& rs, const GatherTaps& wt) {
  const AxisTaps& ax = wt.ax;
  auto edge = [&](int64_t k) {
    T acc = 0;
    for (int t = 0; t < ax.ntaps; ++t) {
      const int64_t j = ax.source(t, k);
      if (j < 0) continue;
      T v = 0;
      for (int r = 0; r < rs.count; ++r) v += rs.weight[r] * rs.row[r][j];
      acc += static_cast<T>(ax.weight[t]) * v;
    }
    out[k] = acc;
  };
  for (int64_t k = 0; k < wt.lo; ++k) edge(k);
  for (int64_t k = wt.hi; k < ax.dst_len; ++k) edge(k);
}

// out[k] for k in [lo, hi) by the interior formula, every tap read without a bounds check: the caller
// makes sure the reads are inside what rs.row[] point into (gather_row: [wt.lo, wt.hi) of one row; the
// block kernel: a run of whole rows of a plane, whose wrapped edges it recomputes).
template <typename T>
inline void gather_run(T* __restrict out, const RowSources<T>& rs, const AxisTaps& ax, int64_t lo, int64_t hi) {
  const T w0 = static_cast<T>(ax.weight[0]), w1 = static_cast<T>(ax.weight[1]);
  const int64_t s = ax.stride, off = ax.off[0], d = ax.off[1] - ax.off[0];
  if (ax.ntaps == 1) {
    if (rs.count == 1 && rs.weight[0] == T(1) && w0 == T(1) && s == 1) {  // integer shift: a move
      std::memcpy(out + lo, rs.row[0] + off + lo, (hi - lo) * sizeof(T));
      return;
    }
    return detail::gather_interior_rows<T, false>(out, rs, w0, w1, s, off, d, lo, hi);
  }
  detail::gather_interior_rows<T, true>(out, rs, w0, w1, s, off, d, lo, hi);
}

// out[0, ax.dst_len) = sum over source rows and W taps (zero where a tap reads outside).
template <typename T>
inline void gather_row(T* __restrict out, const RowSources<T>& rs, const GatherTaps& wt) {
  if (rs.count == 0) {
    std::fill(out, out + wt.ax.dst_len, T(0));
    return;
  }
  gather_edges(out, rs, wt);
  gather_run(out, rs, wt.ax, wt.lo, wt.hi);
}

}  // namespace rubiks

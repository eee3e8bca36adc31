// CPU kernels of the RubiksShift operator (forward, input gradient, shift
// gradient). Layout (N, T, C, H, W), contiguous. Every kernel walks the (n, t, c)
// planes (in (n, c, t) order, PlaneOrder), in parallel through ATen's OpenMP
// thread pool, and works row by row: a row of the result is a weighted sum of at
// most 4 source rows (2 T taps x 2 H taps), each read with the 2 W taps, written
// in one pass (row_gather.h); the shift gradient correlates a gradient row with
// those source rows in one pass (row_correlation.h). Interiors run as
// unit-stride loops the compiler vectorises; only the edges check bounds.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>

#include "../rubiks_shift_prologue.h"
#include "channel_taps.h"
#include "row_correlation.h"
#include "row_gather.h"

namespace rubiks {
namespace {

// The W-axis taps of one channel with their in-bounds ranges precomputed.
struct RowTaps {
  AxisTaps ax;
  int64_t lo[2], hi[2];
  explicit RowTaps(const AxisTaps& a) : ax(a) {
    for (int t = 0; t < 2; ++t) ax.valid_range(t, &lo[t], &hi[t]);
  }
};

// out[k] += w * src[k*s + off] for k in [lo, hi).
template <typename T>
inline void axpy_tap(T* __restrict out, const T* __restrict src, T w, int64_t s, int64_t off,
                     int64_t lo, int64_t hi) {
  if (s == 1) {
    const T* __restrict p = src + off;
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) out[k] += w * p[k];
  } else {
    for (int64_t k = lo; k < hi; ++k) out[k] += w * src[k * s + off];
  }
}

// out row += wr * (W-axis stencil applied to one source row).
template <typename T>
inline void accumulate_row(T* __restrict out, const T* __restrict src, T wr, const RowTaps& rt) {
  const AxisTaps& ax = rt.ax;
  if (ax.adjoint) {  // strided adjoint: sparse taps, checked per element
    for (int64_t k = 0; k < ax.dst_len; ++k) {
      T acc = 0;
      for (int t = 0; t < ax.ntaps; ++t) {
        const int64_t j = ax.source(t, k);
        if (j >= 0) acc += static_cast<T>(ax.weight[t]) * src[j];
      }
      out[k] += wr * acc;
    }
    return;
  }
  const T w0 = wr * static_cast<T>(ax.weight[0]);
  if (ax.ntaps == 1) {
    axpy_tap(out, src, w0, ax.stride, ax.off[0], rt.lo[0], rt.hi[0]);
    return;
  }
  const T w1 = wr * static_cast<T>(ax.weight[1]);
  const int64_t lo = std::max(rt.lo[0], rt.lo[1]), hi = std::min(rt.hi[0], rt.hi[1]);
  if (lo >= hi) {
    axpy_tap(out, src, w0, ax.stride, ax.off[0], rt.lo[0], rt.hi[0]);
    axpy_tap(out, src, w1, ax.stride, ax.off[1], rt.lo[1], rt.hi[1]);
    return;
  }
  // edges where only one tap is in bounds
  axpy_tap(out, src, w0, ax.stride, ax.off[0], rt.lo[0], lo);
  axpy_tap(out, src, w0, ax.stride, ax.off[0], hi, rt.hi[0]);
  axpy_tap(out, src, w1, ax.stride, ax.off[1], rt.lo[1], lo);
  axpy_tap(out, src, w1, ax.stride, ax.off[1], hi, rt.hi[1]);
  // interior: both taps in one pass
  if (ax.stride == 1) {
    const T* __restrict p0 = src + ax.off[0];
    const T* __restrict p1 = src + ax.off[1];
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) out[k] += w0 * p0[k] + w1 * p1[k];
  } else {
    const int64_t s = ax.stride;
    for (int64_t k = lo; k < hi; ++k)
      out[k] += w0 * src[k * s + ax.off[0]] + w1 * src[k * s + ax.off[1]];
  }
}

// Up to two (source index, weight) pairs of one destination index on an axis.
struct AxisSources {
  int64_t index[2];
  double weight[2];
  int sign[2];  // d(weight)/d(shift): -1 for the lower tap, +1 for the upper
  int count = 0;
  AxisSources(const AxisTaps& ax, int64_t i) {
    for (int t = 0; t < ax.ntaps; ++t) {
      const int64_t j = ax.source(t, i);
      if (j < 0) continue;
      index[count] = j;
      weight[count] = ax.weight[t];
      sign[count] = t == 0 ? -1 : 1;
      ++count;
    }
  }
};

struct Sizes {
  int64_t N, C;
  std::array<int64_t, 3> src, dst;  // (T, H, W)
};

inline int64_t plane_grain(int64_t plane_elems) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, plane_elems));
}

// The kernels walk the (n, t, c) planes of the result in (n, c, t) order: the
// T taps of consecutive t share a source plane, read again while it is still in
// cache (in memory order the next reader is C planes later, after it left).
struct PlaneOrder {
  int64_t Td, C;
  // the plane index (n * Td + td) * C + c of the q-th plane walked, and its n, td, c
  int64_t plane(int64_t q, int64_t* n, int64_t* td, int64_t* c) const {
    *td = q % Td;
    *c = (q / Td) % C;
    *n = q / (Td * C);
    return (*n * Td + *td) * C + *c;
  }
};

// One plane of a stencil that gathers along H (stride 1, two taps) and W, done
// separably: each source row, T-combined and W-interpolated, is made once into
// `rows_w` (it feeds two output rows), then every output row blends two of them.
// 6 multiply-adds an element instead of 8 (4 source rows x 2 W taps).
template <typename T>
void separable_plane(T* out, const T* const* src_planes, const AxisSources& ts, const AxisTaps& hax,
                     const GatherTaps& wt, int64_t Hs, int64_t Ws, T* rows_w) {
  const int64_t Hd = hax.dst_len, Wd = wt.ax.dst_len;
  // the source rows read (the adjoint's taps are in descending order)
  const int64_t off_lo = std::min(hax.off[0], hax.off[1]), off_hi = std::max(hax.off[0], hax.off[1]);
  const int64_t used_lo = std::max<int64_t>(0, off_lo), used_hi = std::min(Hs, Hd + off_hi);
  for (int64_t h = used_lo; h < used_hi; ++h) {
    RowSources<T> rows;
    for (int a = 0; a < ts.count; ++a) rows.add(src_planes[a] + h * Ws, ts.weight[a]);
    gather_row(rows_w + h * Wd, rows, wt);
  }
  for (int64_t hd = 0; hd < Hd; ++hd) {
    const AxisSources hs(hax, hd);
    T* __restrict orow = out + hd * Wd;
    if (hs.count == 0) {
      std::fill(orow, orow + Wd, T(0));
      continue;
    }
    const T* __restrict y0 = rows_w + hs.index[0] * Wd;
    const T w0 = static_cast<T>(hs.weight[0]);
    if (hs.count == 1) {
#pragma omp simd
      for (int64_t k = 0; k < Wd; ++k) orow[k] = w0 * y0[k];
      continue;
    }
    const T* __restrict y1 = rows_w + hs.index[1] * Wd;
    const T w1 = static_cast<T>(hs.weight[1]);
#pragma omp simd
    for (int64_t k = 0; k < Wd; ++k) orow[k] = w0 * y0[k] + w1 * y1[k];
  }
}

// dst = stencil(src): the forward (forward taps) or the input gradient (adjoint taps).
template <typename T>
void apply_stencil(const T* src, T* dst, const Sizes& sz, const std::vector<ChannelTaps>& taps) {
  const int64_t C = sz.C, Td = sz.dst[0], Hd = sz.dst[1], Wd = sz.dst[2];
  const int64_t Ts = sz.src[0], src_plane = sz.src[1] * sz.src[2], dst_plane = Hd * Wd;
  const PlaneOrder order{Td, C};
  at::parallel_for(0, sz.N * Td * C, plane_grain(dst_plane), [&](int64_t begin, int64_t end) {
    std::unique_ptr<T[]> rows_w;  // separable_plane's scratch, made on first use (no zero fill)
    for (int64_t q = begin; q < end; ++q) {
      int64_t n, td, c;
      const int64_t p = order.plane(q, &n, &td, &c);
      const ChannelTaps& tp = taps[c];
      const RowTaps row_taps(tp[2]);
      const AxisSources ts(tp[0], td);
      const GatherTaps gather_taps(tp[2]);
      T* out = dst + p * dst_plane;
      const AxisTaps& hax = tp[1];
      if (!row_taps.ax.adjoint && !hax.adjoint && hax.stride == 1 && hax.ntaps == 2) {
        if (!rows_w) rows_w.reset(new T[sz.src[1] * Wd]);
        const T* src_planes[2];
        for (int a = 0; a < ts.count; ++a) src_planes[a] = src + ((n * Ts + ts.index[a]) * C + c) * src_plane;
        separable_plane(out, src_planes, ts, hax, gather_taps, sz.src[1], sz.src[2], rows_w.get());
        continue;
      }
      for (int64_t hd = 0; hd < Hd; ++hd) {
        T* orow = out + hd * Wd;
        const AxisSources hs(tp[1], hd);
        RowSources<T> rows;
        for (int a = 0; a < ts.count; ++a) {
          const T* plane = src + ((n * Ts + ts.index[a]) * C + c) * src_plane;
          for (int b = 0; b < hs.count; ++b)
            rows.add(plane + hs.index[b] * sz.src[2], ts.weight[a] * hs.weight[b]);
        }
        if (!row_taps.ax.adjoint) {  // a gather along W: every element written once
          gather_row(orow, rows, gather_taps);
          continue;
        }
        std::fill(orow, orow + Wd, T(0));  // strided adjoint: sparse taps, accumulated per row
        for (int r = 0; r < rows.count; ++r) accumulate_row(orow, rows.row[r], rows.weight[r], row_taps);
      }
    }
  });
}

// grad_shift[axis][c] = sum over outputs of g * d(out)/d(shift[axis][c]).
// Each output plane (n, t, c) writes its own three partial sums (double), then
// the planes of a channel are reduced in a fixed order: no atomics, and the
// result does not depend on the number of threads.
template <typename T>
void shift_gradient(const T* x, const T* g, T* grad_shift, const Sizes& sz,
                    const std::vector<ChannelTaps>& taps) {
  const int64_t C = sz.C, Td = sz.dst[0], Hd = sz.dst[1], Wd = sz.dst[2];
  const int64_t Ts = sz.src[0], src_plane = sz.src[1] * sz.src[2], dst_plane = Hd * Wd;
  const int64_t planes = sz.N * Td * C;
  const PlaneOrder order{Td, C};
  // every entry is written below: no zero fill
  const std::unique_ptr<double[]> partial(new double[planes * 3]);
  at::parallel_for(0, planes, plane_grain(dst_plane), [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      int64_t n, td, c;
      const int64_t p = order.plane(q, &n, &td, &c);
      const ChannelTaps& tp = taps[c];
      const CorrelationTaps wt(tp[2]);
      const double ww0 = tp[2].weight[0], ww1 = tp[2].weight[1];
      const AxisSources ts(tp[0], td);
      const T* gplane = g + p * dst_plane;
      double sum_t = 0, sum_h = 0, sum_w = 0;
      for (int64_t hd = 0; hd < Hd; ++hd) {
        const AxisSources hs(tp[1], hd);
        const T* rows[4];
        int count = 0;
        for (int a = 0; a < ts.count; ++a) {
          const T* plane = x + ((n * Ts + ts.index[a]) * C + c) * src_plane;
          for (int b = 0; b < hs.count; ++b) rows[count++] = plane + hs.index[b] * sz.src[2];
        }
        T dots[4][2];  // g . (source row at W tap 0), g . (source row at W tap 1)
        correlate_row(gplane + hd * Wd, rows, count, wt, dots);
        int r = 0;
        for (int a = 0; a < ts.count; ++a) {
          for (int b = 0; b < hs.count; ++b, ++r) {
            const double p0 = dots[r][0], p1 = dots[r][1];
            const double interp = ww0 * p0 + ww1 * p1;  // g . (W-interpolated row)
            sum_t += ts.sign[a] * hs.weight[b] * interp;
            sum_h += hs.sign[b] * ts.weight[a] * interp;
            sum_w += ts.weight[a] * hs.weight[b] * (p1 - p0);
          }
        }
      }
      partial[p * 3 + 0] = sum_t;
      partial[p * 3 + 1] = sum_h;
      partial[p * 3 + 2] = sum_w;
    }
  });
  const int64_t nt = sz.N * Td;
  at::parallel_for(0, C, 16, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double s[3] = {0, 0, 0};
      for (int64_t i = 0; i < nt; ++i)
        for (int a = 0; a < 3; ++a) s[a] += partial[(i * C + c) * 3 + a];
      for (int a = 0; a < 3; ++a) grad_shift[a * C + c] = static_cast<T>(s[a]);
    }
  });
}

// The forward's (and the shift gradient's) source and destination grids.
Sizes forward_sizes(const Geometry& g) { return Sizes{g.N, g.C, g.in, g.out}; }

at::Tensor shift3d_cpu(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                       at::IntArrayRef padding, bool quantize) {
  const Geometry g = check_forward(x, shift, stride, padding, at::kCPU);
  at::Tensor out = at::empty(g.out_size(), x.options());
  if (out.numel() == 0) return out;
  const at::Tensor xc = x.contiguous();
  const auto taps = build_channel_taps(shift, g.in, g.stride, g.padding, quantize, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rubiks_shift3d_cpu", [&] {
    apply_stencil<scalar_t>(xc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                            forward_sizes(g), taps);
  });
  return out;
}

at::Tensor shift3d_grad_input_cpu(const at::Tensor& grad_out, const at::Tensor& shift,
                                  at::IntArrayRef input_size, at::IntArrayRef stride,
                                  at::IntArrayRef padding, bool quantize) {
  const Geometry g = check_grad_input(grad_out, shift, input_size, stride, padding, at::kCPU);
  at::Tensor grad_x = at::empty(g.in_size(), grad_out.options());
  if (grad_x.numel() == 0) return grad_x;
  const at::Tensor gc = grad_out.contiguous();
  const auto taps = build_channel_taps(shift, g.in, g.stride, g.padding, quantize, true);
  // the adjoint maps output-shaped gradients back onto the input grid
  const Sizes sz{g.N, g.C, g.out, g.in};
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "rubiks_shift3d_grad_input_cpu", [&] {
    apply_stencil<scalar_t>(gc.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>(),
                            sz, taps);
  });
  return grad_x;
}

at::Tensor shift3d_grad_shift_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                  const at::Tensor& shift, at::IntArrayRef stride,
                                  at::IntArrayRef padding) {
  const Geometry g = check_grad_shift(grad_out, x, shift, stride, padding, at::kCPU);
  at::Tensor grad_shift = new_shift_grad(shift);
  if (grad_out.numel() == 0) return grad_shift;
  const at::Tensor xc = x.contiguous(), gc = grad_out.contiguous();
  // the shift gradient is always that of the interpolated op (straight-through for RS-Q)
  const auto taps = build_channel_taps(shift, g.in, g.stride, g.padding, false, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rubiks_shift3d_grad_shift_cpu", [&] {
    shift_gradient<scalar_t>(xc.const_data_ptr<scalar_t>(), gc.const_data_ptr<scalar_t>(),
                             grad_shift.mutable_data_ptr<scalar_t>(), forward_sizes(g), taps);
  });
  return grad_shift;
}

}  // namespace

TORCH_LIBRARY_IMPL(rubiks, CPU, m) {
  m.impl("shift3d", &shift3d_cpu);
  m.impl("shift3d_grad_input", &shift3d_grad_input_cpu);
  m.impl("shift3d_grad_shift", &shift3d_grad_shift_cpu);
}

}  // namespace rubiks

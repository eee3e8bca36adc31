// The per-block work of the CUDA kernels, written as __host__ __device__
// functions of (block, thread) so that a host program can run the very same
// code block by block (tests/ops/test_cuda_compile.py does, on a machine with
// no GPU). ATen-free: the taps come from shift_taps.h, shared with the CPU.
//
// Work decomposition (every kernel): a block owns one channel c and a chunk of
// about kElemsPerBlock elements of the tensor it iterates: several consecutive
// (n, t) planes when planes are small, a piece of one plane when they are
// large. Its threads walk the chunk in memory order (consecutive threads,
// consecutive elements: coalesced), mirroring the CPU kernels' per-(n, t, c)
// plane loops. The per-channel taps (the same AxisTaps the CPU kernels use)
// are built once per thread per block from the shift pointer on the device,
// so the host never reads the shift (no synchronisation). Each element reads
// its <= 2 x 2 x 2 sources directly; neighbouring threads share most of them
// through L1/L2.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../shift_taps.h"

// `#pragma unroll` in device code; nothing in host code (host compilers warn about it).
#if defined(__CUDA_ARCH__)
#define RUBIKS_UNROLL _Pragma("unroll")
#else
#define RUBIKS_UNROLL
#endif

namespace rubiks {
namespace gpu {

// ---- scalar types ----------------------------------------------------------
// Accumulation type: float for the half types and float, double for double.
template <typename T>
struct AccType {
  using type = T;
};
template <>
struct AccType<__half> {
  using type = float;
};
template <>
struct AccType<__nv_bfloat16> {
  using type = float;
};

RUBIKS_HOST_DEVICE float to_acc(float v) { return v; }
RUBIKS_HOST_DEVICE double to_acc(double v) { return v; }
RUBIKS_HOST_DEVICE float to_acc(__half v) { return __half2float(v); }
RUBIKS_HOST_DEVICE float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
RUBIKS_HOST_DEVICE T from_acc(typename AccType<T>::type v) {
  return v;
}
template <>
RUBIKS_HOST_DEVICE __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
RUBIKS_HOST_DEVICE __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// ---- integer division by a run-time constant --------------------------------
// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 with a multiply-high, an add and a
// shift (the round-up method: m = floor(2^32 (2^s - d) / d) + 1, s = ceil(log2 d),
// then n / d = (umulhi(n, m) + n) >> s). The kernels divide every element's
// linear index by the plane size and the row length; this keeps that cheap.
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t multiplier = 0;
  uint32_t shift = 0;

  FastDivmod() = default;
  __host__ explicit FastDivmod(uint32_t d) : divisor(d) {
    while ((uint64_t(1) << shift) < d) ++shift;
    const uint64_t one = 1;
    multiplier = static_cast<uint32_t>(((one << 32) * ((one << shift) - d)) / d + 1);
  }
  RUBIKS_HOST_DEVICE uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(n, multiplier);
#else
    const uint32_t hi = static_cast<uint32_t>((uint64_t(n) * multiplier) >> 32);
#endif
    return (hi + n) >> shift;
  }
  RUBIKS_HOST_DEVICE void divmod(uint32_t n, uint32_t* q, uint32_t* r) const {
    *q = div(n);
    *r = n - *q * divisor;
  }
};

// ---- launch geometry ---------------------------------------------------------
constexpr int kThreads = 256;            // threads per block (a multiple of 32)
constexpr int64_t kElemsPerBlock = 8192;  // elements a block aims to cover (32 per thread)

// The problem as the launch functions receive it: x is (N, T, C, H, W).
struct Shape3d {
  int64_t N = 0, C = 0;
  int64_t in[3] = {0, 0, 0};  // T, H, W of x
  int64_t stride[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};
};

// Everything a block needs, passed to the kernels by value.
struct Plan {
  int64_t C = 0;
  int64_t in_len[3], stride[3], pad[3];  // geometry of x, for the taps
  int64_t src_T = 0, src_W = 0, src_plane = 0;  // the tensor read: (N, src_T, C, ., src_W)
  int64_t dst_T = 0, dst_plane = 0;             // the tensor iterated (written, or grad_out)
  int64_t planes = 0;                           // N * dst_T: planes per channel
  // Chunks: block b works on channel b / chunks, chunk k = b % chunks of it. A chunk
  // is planes_per_chunk whole planes (small planes), or one piece of piece_len
  // elements of a plane cut into pieces_per_plane (planes above kElemsPerBlock).
  int64_t planes_per_chunk = 1, pieces_per_plane = 1, piece_len = 0, chunks = 0;
  FastDivmod plane_div, w_div, t_div;           // by dst_plane, dst_W, dst_T
  bool quantize = false;
  bool adjoint = false;  // iterate the input grid, read the output grid (input gradient)

  RUBIKS_HOST_DEVICE int64_t blocks() const { return C * chunks; }
};

// Output sizes (T', H', W') of the shift of x.
inline void output_sizes(const Shape3d& s, int64_t out[3]) {
  for (int a = 0; a < 3; ++a) out[a] = shift_output_size(s.in[a], s.stride[a], s.pad[a]);
}

// The plan of the forward (adjoint=false: read x, write out) or of the input
// gradient (adjoint=true: read grad_out, write grad_x). The shift gradient uses
// the forward plan with quantize=false (it iterates grad_out and reads x).
inline Plan make_plan(const Shape3d& s, bool adjoint, bool quantize) {
  int64_t out[3];
  output_sizes(s, out);
  const int64_t* src = adjoint ? out : s.in;
  const int64_t* dst = adjoint ? s.in : out;
  Plan p;
  p.C = s.C;
  for (int a = 0; a < 3; ++a) {
    p.in_len[a] = s.in[a];
    p.stride[a] = s.stride[a];
    p.pad[a] = s.pad[a];
  }
  p.src_T = src[0];
  p.src_W = src[2];
  p.src_plane = src[1] * src[2];
  p.dst_T = dst[0];
  p.dst_plane = dst[1] * dst[2];
  p.planes = s.N * dst[0];
  p.quantize = quantize;
  p.adjoint = adjoint;
  if (p.planes <= 0 || p.dst_plane <= 0 || s.C <= 0) {
    p.chunks = 0;  // nothing to do: no blocks
    return p;
  }
  if (p.dst_plane <= kElemsPerBlock) {
    p.planes_per_chunk = kElemsPerBlock / p.dst_plane;
    p.pieces_per_plane = 1;
    p.piece_len = p.dst_plane;
    p.chunks = (p.planes + p.planes_per_chunk - 1) / p.planes_per_chunk;
  } else {  // balanced pieces of at most kElemsPerBlock elements
    p.planes_per_chunk = 1;
    p.pieces_per_plane = (p.dst_plane + kElemsPerBlock - 1) / kElemsPerBlock;
    p.piece_len = (p.dst_plane + p.pieces_per_plane - 1) / p.pieces_per_plane;
    p.chunks = p.planes * p.pieces_per_plane;
  }
  p.plane_div = FastDivmod(static_cast<uint32_t>(p.dst_plane));
  p.w_div = FastDivmod(static_cast<uint32_t>(dst[2]));
  p.t_div = FastDivmod(static_cast<uint32_t>(dst[0]));
  return p;
}

// nullptr when the kernels can index this problem, else why not. Whole-tensor
// offsets are 64-bit; within a block the kernels use 32-bit indices, so a
// single (H, W) plane and the number of (n, t) planes must stay below 2^31,
// and so must the number of blocks (the grid).
inline const char* unsupported_reason(const Shape3d& s) {
  const int64_t lim = INT32_MAX;
  int64_t out[3];
  output_sizes(s, out);
  if (s.in[1] * s.in[2] > lim || out[1] * out[2] > lim)
    return "an (H, W) plane of 2^31 or more elements is not supported by the CUDA kernels";
  if (s.N * s.in[0] > lim || s.N * out[0] > lim)
    return "N * T of 2^31 or more is not supported by the CUDA kernels";
  if (make_plan(s, false, false).blocks() > lim || make_plan(s, true, false).blocks() > lim)
    return "the problem needs 2^31 or more CUDA blocks, which is not supported";
  return nullptr;
}

// Elements of the shift-gradient workspace (partial sums, AccType): 3 per block.
inline int64_t grad_shift_workspace_elems(const Shape3d& s) {
  return make_plan(s, false, false).blocks() * 3;
}

// ---- per-channel taps ---------------------------------------------------------
struct Taps3 {
  AxisTaps t, h, w;
};

template <typename acc_t>
struct Weights3 {
  acc_t t[2], h[2], w[2];
};

// The taps of channel c, read from the (3, C) shift on the device. The shift
// is widened to double first, as the CPU kernels do.
template <typename scalar_t>
RUBIKS_HOST_DEVICE AxisTaps axis_taps(const scalar_t* shift, const Plan& p, int axis, int64_t c) {
  const double s = static_cast<double>(to_acc(shift[axis * p.C + c]));
  const AxisTaps f = forward_taps(p.in_len[axis], p.stride[axis], p.pad[axis], s, p.quantize);
  return p.adjoint ? adjoint_taps(f) : f;
}

template <typename scalar_t>
RUBIKS_HOST_DEVICE Taps3 channel_taps(const scalar_t* shift, const Plan& p, int64_t c) {
  Taps3 r;
  r.t = axis_taps(shift, p, 0, c);
  r.h = axis_taps(shift, p, 1, c);
  r.w = axis_taps(shift, p, 2, c);
  return r;
}

template <typename acc_t>
RUBIKS_HOST_DEVICE Weights3<acc_t> tap_weights(const Taps3& tp) {
  Weights3<acc_t> w;
  RUBIKS_UNROLL
  for (int k = 0; k < 2; ++k) {
    w.t[k] = static_cast<acc_t>(tp.t.weight[k]);
    w.h[k] = static_cast<acc_t>(tp.h.weight[k]);
    w.w[k] = static_cast<acc_t>(tp.w.weight[k]);
  }
  return w;
}

// Chunk of block b: channel c, first plane q0, first element e0 in that plane,
// and the number of elements (< 2^31), consecutive in the channel's (q, e) order.
struct Chunk {
  int64_t c, q0;
  uint32_t e0, count;
};

RUBIKS_HOST_DEVICE Chunk chunk_of(const Plan& p, int64_t block) {
  Chunk ch;
  ch.c = block / p.chunks;
  const int64_t k = block - ch.c * p.chunks;
  if (p.pieces_per_plane > 1) {
    ch.q0 = k / p.pieces_per_plane;
    const int64_t e0 = (k - ch.q0 * p.pieces_per_plane) * p.piece_len;
    const int64_t rest = p.dst_plane - e0;
    ch.e0 = static_cast<uint32_t>(e0);
    ch.count = static_cast<uint32_t>(rest < p.piece_len ? rest : p.piece_len);
  } else {
    ch.q0 = k * p.planes_per_chunk;
    int64_t q1 = ch.q0 + p.planes_per_chunk;
    if (q1 > p.planes) q1 = p.planes;
    ch.e0 = 0;
    ch.count = static_cast<uint32_t>((q1 - ch.q0) * p.dst_plane);
  }
  return ch;
}

// The element at local index l of a chunk: (n, t, h, w) of the iterated tensor
// and its offset inside channel c. i = e0 + l < 2^31: either several whole
// planes (e0 = 0, at most kElemsPerBlock elements) or a piece of one plane.
struct Element {
  int64_t n, t, h, w;
  int64_t offset;  // ((n * dst_T + t) * C + c) * dst_plane + (h * W + w), without the c term
};

RUBIKS_HOST_DEVICE Element element_at(const Plan& p, const Chunk& ch, uint32_t l) {
  const int64_t q0 = ch.q0;
  uint32_t dq, e, h, w, n, t;
  p.plane_div.divmod(ch.e0 + l, &dq, &e);
  p.w_div.divmod(e, &h, &w);
  p.t_div.divmod(static_cast<uint32_t>(q0 + dq), &n, &t);
  Element el;
  el.n = n;
  el.t = t;
  el.h = h;
  el.w = w;
  el.offset = (q0 + dq) * p.C * p.dst_plane + e;  // q = n * dst_T + t
  return el;
}

// ---- forward and input gradient ---------------------------------------------
// The value of one iterated element: the separable stencil over at most
// 2 x 2 x 2 source elements. `src_c` points at channel c of the source (n = 0, t = 0).
template <typename scalar_t, typename acc_t>
RUBIKS_HOST_DEVICE acc_t stencil_value(const scalar_t* src_c, const Plan& p, const Taps3& tp,
                                       const Weights3<acc_t>& wt, const Element& el) {
  acc_t acc = 0;
  RUBIKS_UNROLL
  for (int a = 0; a < 2; ++a) {
    if (a >= tp.t.ntaps) break;
    const int64_t ts = tp.t.source(a, el.t);
    if (ts < 0) continue;
    const scalar_t* plane = src_c + (el.n * p.src_T + ts) * p.C * p.src_plane;
    acc_t acc_h = 0;
    RUBIKS_UNROLL
    for (int b = 0; b < 2; ++b) {
      if (b >= tp.h.ntaps) break;
      const int64_t hs = tp.h.source(b, el.h);
      if (hs < 0) continue;
      const scalar_t* row = plane + hs * p.src_W;
      acc_t acc_w = 0;
      RUBIKS_UNROLL
      for (int k = 0; k < 2; ++k) {
        if (k >= tp.w.ntaps) break;
        const int64_t ws = tp.w.source(k, el.w);
        if (ws >= 0) acc_w += wt.w[k] * to_acc(row[ws]);
      }
      acc_h += wt.h[b] * acc_w;
    }
    acc += wt.t[a] * acc_h;
  }
  return acc;
}

// What thread `thread` of block `block` (of `nthreads`) computes: dst = stencil(src).
template <typename scalar_t>
RUBIKS_HOST_DEVICE void stencil_block(const scalar_t* src, scalar_t* dst, const scalar_t* shift,
                                      const Plan& p, int64_t block, uint32_t thread,
                                      uint32_t nthreads) {
  using acc_t = typename AccType<scalar_t>::type;
  const Chunk ch = chunk_of(p, block);
  const Taps3 tp = channel_taps(shift, p, ch.c);
  const Weights3<acc_t> wt = tap_weights<acc_t>(tp);
  const scalar_t* src_c = src + ch.c * p.src_plane;
  scalar_t* dst_c = dst + ch.c * p.dst_plane;
  for (uint32_t l = thread; l < ch.count; l += nthreads) {
    const Element el = element_at(p, ch, l);
    dst_c[el.offset] = from_acc<scalar_t>(stencil_value(src_c, p, tp, wt, el));
  }
}

// ---- shift gradient ---------------------------------------------------------
// grad_shift[axis][c] = sum over output elements of g * d(out)/d(shift[axis][c]),
// with d(weight)/d(shift) = -1 for a lower tap and +1 for an upper one (the
// derivative from above at integer shifts, as on the CPU).
template <typename acc_t>
struct Sums3 {
  acc_t t = 0, h = 0, w = 0;
};

template <typename scalar_t, typename acc_t>
RUBIKS_HOST_DEVICE void shift_grad_terms(const scalar_t* x_c, const Plan& p, const Taps3& tp,
                                         const Weights3<acc_t>& wt, const Element& el, acc_t g,
                                         Sums3<acc_t>* sums) {
  acc_t lt = 0, lh = 0, lw = 0;
  RUBIKS_UNROLL
  for (int a = 0; a < 2; ++a) {
    if (a >= tp.t.ntaps) break;
    const int64_t ts = tp.t.source(a, el.t);
    if (ts < 0) continue;
    const scalar_t* plane = x_c + (el.n * p.src_T + ts) * p.C * p.src_plane;
    RUBIKS_UNROLL
    for (int b = 0; b < 2; ++b) {
      if (b >= tp.h.ntaps) break;
      const int64_t hs = tp.h.source(b, el.h);
      if (hs < 0) continue;
      const scalar_t* row = plane + hs * p.src_W;
      const int64_t w0 = tp.w.source(0, el.w);
      const int64_t w1 = tp.w.ntaps > 1 ? tp.w.source(1, el.w) : -1;
      const acc_t p0 = w0 >= 0 ? to_acc(row[w0]) : acc_t(0);
      const acc_t p1 = w1 >= 0 ? to_acc(row[w1]) : acc_t(0);
      const acc_t interp = wt.w[0] * p0 + wt.w[1] * p1;  // the W-interpolated value
      lt += (a == 0 ? -wt.h[b] : wt.h[b]) * interp;
      lh += (b == 0 ? -wt.t[a] : wt.t[a]) * interp;
      lw += wt.t[a] * wt.h[b] * (p1 - p0);
    }
  }
  sums->t += g * lt;
  sums->h += g * lh;
  sums->w += g * lw;
}

// One thread's share of block `block`'s partial sums (the block then reduces them).
template <typename scalar_t>
RUBIKS_HOST_DEVICE Sums3<typename AccType<scalar_t>::type> shift_grad_thread(
    const scalar_t* grad_out, const scalar_t* x, const scalar_t* shift, const Plan& p,
    int64_t block, uint32_t thread, uint32_t nthreads) {
  using acc_t = typename AccType<scalar_t>::type;
  Sums3<acc_t> sums;
  const Chunk ch = chunk_of(p, block);
  const Taps3 tp = channel_taps(shift, p, ch.c);
  const Weights3<acc_t> wt = tap_weights<acc_t>(tp);
  const scalar_t* x_c = x + ch.c * p.src_plane;
  const scalar_t* g_c = grad_out + ch.c * p.dst_plane;
  for (uint32_t l = thread; l < ch.count; l += nthreads) {
    const Element el = element_at(p, ch, l);
    shift_grad_terms(x_c, p, tp, wt, el, to_acc(g_c[el.offset]), &sums);
  }
  return sums;
}

// Second pass: grad_shift[axis][c] = the blocks' partials of channel c summed in
// chunk order (deterministic), then cast to the scalar type. i = axis * C + c.
template <typename scalar_t>
RUBIKS_HOST_DEVICE void shift_grad_finalize_one(const typename AccType<scalar_t>::type* partial,
                                                scalar_t* grad_shift, int64_t C, int64_t chunks,
                                                int64_t i) {
  using acc_t = typename AccType<scalar_t>::type;
  const int64_t axis = i / C, c = i - axis * C;
  const acc_t* q = partial + c * chunks * 3 + axis;
  acc_t s = 0;
  for (int64_t k = 0; k < chunks; ++k) s += q[k * 3];
  grad_shift[i] = from_acc<scalar_t>(s);
}

}  // namespace gpu
}  // namespace rubiks

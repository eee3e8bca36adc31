// The inference form of a whole RubiksNet block on CPU, in two tiled passes
// that keep their intermediates in cache:
//   out = w3 @ shift(relu(w2 @ tshift(relu(bn1(x))) + b2)) + (wsc @ relu(bn1(x))[::s, ::s] or x)
// with tshift the RS-AQ integer temporal shift (identity otherwise).
//
// Pass 1, per (frame, tile of pixels): the pre-activation relu(bn1(x)) of the
// tile (its channels read from their temporally shifted frames under RS-AQ) is
// made in a buffer, multiplied by conv2's weight straight into `mid`, then
// conv2's folded bias and the ReLU are applied while the tile is in cache.
// `mid` is the one tensor written between the passes: the shift reads it at
// other frames and rows, so it cannot be computed per tile without halos.
// Pass 2, per (frame, tile of output rows): the shifted tile of `mid` is
// gathered into a buffer (row_gather.h), the residual written into the output
// tile (the input rows, or the strided shortcut conv of the pre-activation,
// recomputed from x), and conv3's product accumulated onto it (beta = 1).
// The GEMMs: where the CPU has AVX2 and FMA, tile_gemm (tile_gemm.h) on the tile in place, its epilogue
// adding conv2's bias and the ReLU (pass 1) or starting from the residual's rows (pass 2; with a
// shortcut conv, one GEMM of [w3 | wsc] over [shifted; pre]); elsewhere, or with RUBIKS_BLOCK_GEMM=blas,
// MKL's sgemm on strided tile views with the bias/ReLU and the residual copy as separate passes. The
// tiles run in parallel on ATen's thread pool.
//
// Schedule. Where a frame has enough tiles to keep every thread busy (the
// large early frames), the passes go frame by frame through each clip and
// `mid` is a ring of the few frames the temporal taps reach (behind + 1 +
// ahead): pass 1 runs just ahead of pass 2, so `mid` and the input frames are
// read back from cache instead of memory. Elsewhere (small frames: a frame's
// tiles are fewer than the threads) pass 1 runs over every frame, then pass 2.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "channel_taps.h"
#include "row_gather.h"
#include "tile_gemm.h"

#ifndef RUBIKS_LIBRARY
#define RUBIKS_LIBRARY rubiks
#endif

namespace rubiks {
namespace {

// Floats of the buffers one tile may use: three quarters of the core's L2 (sysconf; 512 KiB where it
// does not say), leaving room for the packed weights. On a 512 KiB L2 this measured 1.02-1.06x over
// half of it (bench_block_revisions, tiny, 1 and 2 threads); a third was 0.96x.
int64_t tile_floats() {
  static const int64_t floats = [] {
#ifdef _SC_LEVEL2_CACHE_SIZE  // glibc
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#else
    const long l2 = 0;
#endif
    const int64_t bytes = l2 > 0 ? l2 : 512 * 1024;
    return std::clamp<int64_t>(bytes * 3 / 4 / int64_t(sizeof(float)), 32 * 1024, 512 * 1024);
  }();
  return floats;
}

// The element-wise work of a tile (pre-activation, bias/ReLU, the shift's gather) is compiled twice, for
// x86-64-v3 (AVX2 + FMA) and for baseline x86-64, and the CPU picks one when the library loads: the
// binary stays portable and takes 8-wide vectors where they exist. `flatten` inlines the helpers
// (bn_relu, gather_row) into each copy so they are vectorised for its ISA. The GEMMs are not in them:
// tile_gemm is AVX2 + FMA only, and MKL dispatches on its own.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RUBIKS_ISA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), flatten))
#else
#define RUBIKS_ISA_CLONES
#endif

}  // namespace
}  // namespace rubiks

// The Fortran BLAS sgemm that torch's MKL exports (ATen's cpublas wrapper is not exported); weak,
// so a torch built on another BLAS without it still loads and takes the ATen path below.
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc) __attribute__((weak));

namespace rubiks {
namespace {

// out[M x P] (row stride ldo) = beta * out + w[M x K] @ x[K x P] (row stride ldx). Row-major
// operands are column-major transposes, so BLAS computes out^T = x^T w^T.
inline void gemm_rows(const float* w, int64_t M, int64_t K, const float* x, int64_t ldx, float* out,
                      int64_t ldo, int64_t P, float beta) {
  if (sgemm_ != nullptr) {
    const int m = P, n = M, k = K, lda = ldx, ldb = K, ldc = ldo;
    const float alpha = 1.0f;
    sgemm_("N", "N", &m, &n, &k, &alpha, x, &lda, w, &ldb, &beta, out, &ldc);
    return;
  }
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor o = at::from_blob(out, {M, P}, {ldo, 1}, opts);
  at::Tensor prod = at::mm(at::from_blob(const_cast<float*>(w), {M, K}, opts),
                           at::from_blob(const_cast<float*>(x), {K, P}, {ldx, 1}, opts));
  if (beta == 0.0f) o.copy_(prod); else o.add_(prod);
}

// dst[k] = max(src[k] * s + b, 0)
inline void bn_relu(float* __restrict dst, const float* __restrict src, float s, float b, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dst[k] = std::max(src[k] * s + b, 0.0f);
}

struct BlockArgs {
  int64_t clips, T, Cin, Cmid, H, W, Hd, Wd, stride;
  const float* x;
  const float* bn_scale;
  const float* bn_shift;
  const int64_t* time_shift;  // per input channel (RS-AQ), or null
  const float* w2;
  const float* b2;
  const float* w3;
  const float* wsc;  // shortcut conv (Cmid x Cin), or null: the residual is x
  // tile_gemm's weights where it is used (AVX2 + FMA; its epilogues fuse the bias/ReLU and residual):
  // w2, and w3 or [w3 | wsc] (Cmid x (Cmid + Cin)). Null: the BLAS and separate passes.
  const PackedWeights* p2;
  const PackedWeights* p3;
};

// Where frame f of `mid` is: all frames of the batch, or a ring of `slots` frames of the clip in work.
struct MidFrames {
  float* base;
  int64_t frame_floats, T, slots;  // slots == 0: every frame has its own
  float* at(int64_t f) const { return base + (slots ? (f % T) % slots : f) * frame_floats; }
};

// n items in tiles of at most `cap`, the tiles as even as the count allows (a short last tile would
// leave a thread idle when a frame has few tiles); rounded up to `align`.
inline int64_t even_tile(int64_t n, int64_t cap, int64_t align) {
  const int64_t count = (n + cap - 1) / cap;
  const int64_t t = ((n + count - 1) / count + align - 1) / align * align;
  return std::min(n, t);
}

// Pixels per pass-1 tile and output rows per pass-2 tile. Pass 2's buffers (and, for the BLAS, the output
// tile it reads back for beta = 1) fill tile_floats(); tile_gemm writes its output once from registers, so
// it needs no room for it. (Sized the same way, pass 1's tiles measured no faster: its output, `mid`, is
// read back by pass 2.)
inline int64_t mid_tile(const BlockArgs& a) {
  return even_tile(a.H * a.W, std::max<int64_t>(64, tile_floats() / (a.Cin + a.Cmid)), 16);
}
inline int64_t out_tile_rows(const BlockArgs& a) {
  const int64_t per_row = a.Wd * (a.Cmid + (a.p3 ? 0 : a.Cmid) + (a.wsc ? a.Cin : 0));
  return even_tile(a.Hd, std::max<int64_t>(1, tile_floats() / per_row), 1);
}

// pre[c, 0:np] = relu(bn1(x)) of frame f's pixels [p0, p0 + np), each channel read from its temporally
// shifted frame under RS-AQ (zero where that frame is outside the clip).
RUBIKS_ISA_CLONES void preactivate_tile(const BlockArgs& a, int64_t f, int64_t p0, int64_t np, float* pre) {
  const int64_t HW = a.H * a.W, t = f % a.T, clip0 = f - t;
  for (int64_t c = 0; c < a.Cin; ++c) {
    float* dst = pre + c * np;
    const int64_t ts = a.time_shift ? t + a.time_shift[c] : t;
    if (ts < 0 || ts >= a.T) {  // shifted in from outside the clip: zero (after the ReLU)
      std::fill(dst, dst + np, 0.0f);
      continue;
    }
    bn_relu(dst, a.x + ((clip0 + ts) * a.Cin + c) * HW + p0, a.bn_scale[c], a.bn_shift[c], np);
  }
}

// rows[c, 0:np] = relu(rows[c, 0:np] + b[c]) for the Cmid rows of stride ld.
RUBIKS_ISA_CLONES void bias_relu_rows(float* rows, int64_t ld, const float* b, int64_t C, int64_t np) {
  for (int64_t c = 0; c < C; ++c) {
    float* row = rows + c * ld;
    const float bc = b[c];
#pragma omp simd
    for (int64_t k = 0; k < np; ++k) row[k] = std::max(row[k] + bc, 0.0f);
  }
}

// Pass 1 for frames [f0, f1): mid = relu(w2 @ pre + b2), pre = relu(bn1(x)) (temporally shifted per
// channel under RS-AQ).
void block_mid(const BlockArgs& a, const MidFrames& mid, int64_t f0, int64_t f1) {
  const int64_t HW = a.H * a.W;
  const int64_t P = mid_tile(a);
  const int64_t tiles = (HW + P - 1) / P;
  at::parallel_for(0, (f1 - f0) * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> pre(a.Cin * P), panel(a.p2 ? a.Cin * 16 : 0);
    for (int64_t q = begin; q < end; ++q) {
      const int64_t f = f0 + q / tiles, p0 = (q % tiles) * P, np = std::min(P, HW - p0);
      preactivate_tile(a, f, p0, np, pre.data());
      float* out = mid.at(f) + p0;
      if (a.p2) {
        tile_gemm(*a.p2, pre.data(), np, out, HW, np, TileEpilogue{nullptr, 0, a.b2, true}, panel.data());
        continue;
      }
      gemm_rows(a.w2, a.Cmid, a.Cin, pre.data(), np, out, HW, np, 0.0f);
      bias_relu_rows(out, HW, a.b2, a.Cmid, np);
    }
  });
}

// Stride 1: rows [ra, rb) of channel c's output tile as one flat run of (rb - ra) * W pixels. Every term
// (T tap x H tap x W tap) is the plane read at one flat offset, so the run is a weighted sum of shifted
// runs, vectorised across row ends (per row, a 14- or 7-pixel row leaves most of it to scalar remainder
// and edge code). Where a W tap reads outside its row the flat read wraps into the next row: those
// columns, [0, lo) and [hi, W), are recomputed exactly afterwards. The caller picks [ra, rb) so that every
// H tap reads inside the frame and every flat read inside the plane.
inline void shift_rows_flat(const float* const* planes, const float* tw, int nt, const AxisTaps& ty,
                            const GatherTaps& wx, int64_t W, int64_t ra, int64_t rb, float* out) {
  // the source rows of output row r, as gather_row takes them
  auto sources = [&](int64_t r) {
    RowSources<float> rows;
    for (int k = 0; k < ty.ntaps; ++k)
      for (int u = 0; u < nt; ++u) rows.add(planes[u] + (r + ty.off[k]) * W, double(tw[u]) * ty.weight[k]);
    return rows;
  };
  gather_run(out, sources(ra), wx.ax, 0, (rb - ra) * W);  // row ra's sources, read on through the rows below
  for (int64_t r = ra; r < rb; ++r) gather_edges(out + (r - ra) * W, sources(r), wx);
}

// shifted[c, 0:nr, :] = the shift of `mid` at output rows [r0, r0 + nr) of frame f.
RUBIKS_ISA_CLONES void shift_tile(const BlockArgs& a, const MidFrames& mid, const std::vector<ChannelTaps>& taps,
                                  const std::vector<GatherTaps>& wtaps, int64_t f, int64_t r0, int64_t nr,
                                  float* shifted) {
  const int64_t HW = a.H * a.W, t = f % a.T, clip0 = f - t;
  for (int64_t c = 0; c < a.Cmid; ++c) {
    const ChannelTaps& tp = taps[c];
    const float* planes[2];
    float tw[2];
    int nt = 0;
    for (int k = 0; k < tp[0].ntaps; ++k) {
      const int64_t j = tp[0].source(k, t);
      if (j < 0 || tp[0].weight[k] == 0.0) continue;  // a ring holds no frame for a zero tap
      planes[nt] = mid.at(clip0 + j) + c * HW;
      tw[nt++] = static_cast<float>(tp[0].weight[k]);
    }
    float* out = shifted + c * nr * a.Wd;
    auto row = [&](int64_t r) {  // one output row, r in [r0, r0 + nr)
      RowSources<float> rows;
      for (int k = 0; k < tp[1].ntaps; ++k) {
        const int64_t i = tp[1].source(k, r);
        if (i < 0) continue;
        for (int u = 0; u < nt; ++u) rows.add(planes[u] + i * a.W, double(tw[u]) * tp[1].weight[k]);
      }
      gather_row(out + (r - r0) * a.Wd, rows, wtaps[c]);
    };
    int64_t ra = r0, rb = r0;  // the rows taken flat (stride 1, a frame to read); none: ra == rb == r0
    if (a.stride == 1 && nt > 0) {
      rb = r0 + nr;
      int64_t lo_off = 0, hi_off = 0;  // the flat reads' offsets from the output pixel, least and most
      for (int k = 0; k < tp[1].ntaps; ++k) {
        int64_t l, h;
        tp[1].valid_range(k, &l, &h);
        ra = std::max(ra, l);
        rb = std::min(rb, h);
        for (int x = 0; x < tp[2].ntaps; ++x) {
          const int64_t o = tp[1].off[k] * a.W + tp[2].off[x];
          lo_off = k + x == 0 ? o : std::min(lo_off, o);
          hi_off = k + x == 0 ? o : std::max(hi_off, o);
        }
      }
      while (ra < rb && ra * a.W + lo_off < 0) ++ra;
      while (rb > ra && rb * a.W - 1 + hi_off > HW - 1) --rb;
      if (rb - ra < 2) ra = rb = r0;  // a row or none: the row path
    }
    for (int64_t r = r0; r < ra; ++r) row(r);
    if (rb > ra) shift_rows_flat(planes, tw, nt, tp[1], wtaps[c], a.W, ra, rb, out + (ra - r0) * a.W);
    for (int64_t r = rb; r < r0 + nr; ++r) row(r);
  }
}

// pre[c, 0:nr, :] = relu(bn1(x)) of frame f at the strided pixels of output rows [r0, r0 + nr).
RUBIKS_ISA_CLONES void preactivate_strided(const BlockArgs& a, int64_t f, int64_t r0, int64_t nr, float* pre) {
  const int64_t HW = a.H * a.W;
  const float* xf = a.x + f * a.Cin * HW;
  for (int64_t c = 0; c < a.Cin; ++c) {
    const float s = a.bn_scale[c], b = a.bn_shift[c];
    for (int64_t r = 0; r < nr; ++r) {
      const float* src = xf + c * HW + (r0 + r) * a.stride * a.W;
      float* dst = pre + (c * nr + r) * a.Wd;
      if (a.stride == 2) {  // a constant stride: vectorised with loads and shuffles (a runtime one is not)
#pragma omp simd
        for (int64_t k = 0; k < a.Wd; ++k) dst[k] = std::max(src[2 * k] * s + b, 0.0f);
      } else {
        for (int64_t k = 0; k < a.Wd; ++k) dst[k] = std::max(src[k * a.stride] * s + b, 0.0f);
      }
    }
  }
}

// Pass 2 for frames [f0, f1): out = w3 @ shift(mid) + residual, by tiles of output rows.
void block_out(const BlockArgs& a, const MidFrames& mid, const std::vector<ChannelTaps>& taps,
               const std::vector<GatherTaps>& wtaps, float* out, int64_t f0, int64_t f1) {
  const int64_t HW = a.H * a.W, HWd = a.Hd * a.Wd;
  const int64_t R = out_tile_rows(a);
  const int64_t tiles = (a.Hd + R - 1) / R;
  at::parallel_for(0, (f1 - f0) * tiles, 1, [&](int64_t begin, int64_t end) {
    // tile_gemm reads the shortcut's pre-activation as more rows of `shifted`
    std::vector<float> shifted((a.Cmid + (a.p3 && a.wsc ? a.Cin : 0)) * R * a.Wd);
    std::vector<float> pre(a.wsc && !a.p3 ? a.Cin * R * a.Wd : 0), panel(a.p3 ? a.p3->K * 16 : 0);
    for (int64_t q = begin; q < end; ++q) {
      const int64_t f = f0 + q / tiles, r0 = (q % tiles) * R, nr = std::min(R, a.Hd - r0), np = nr * a.Wd;
      shift_tile(a, mid, taps, wtaps, f, r0, nr, shifted.data());
      float* o = out + f * a.Cmid * HWd + r0 * a.Wd;
      const float* xf = a.x + f * a.Cin * HW;
      if (a.p3) {  // one GEMM: [w3 | wsc] @ [shifted; pre], or w3 @ shifted onto x's rows
        if (a.wsc) {
          float* pre_rows = shifted.data() + a.Cmid * np;
          preactivate_strided(a, f, r0, nr, pre_rows);
          tile_gemm(*a.p3, shifted.data(), np, o, HWd, np, TileEpilogue{}, panel.data());
        } else {
          tile_gemm(*a.p3, shifted.data(), np, o, HWd, np, TileEpilogue{xf + r0 * a.W, HW}, panel.data());
        }
        continue;
      }
      if (a.wsc) {  // residual = wsc @ relu(bn1(x)) at the strided pixels
        preactivate_strided(a, f, r0, nr, pre.data());
        gemm_rows(a.wsc, a.Cmid, a.Cin, pre.data(), np, o, HWd, np, 0.0f);
      } else {  // residual = x (same shape as the output)
        for (int64_t c = 0; c < a.Cmid; ++c) std::copy(xf + c * HW + r0 * a.W, xf + c * HW + r0 * a.W + np, o + c * HWd);
      }
      gemm_rows(a.w3, a.Cmid, a.Cmid, shifted.data(), np, o, HWd, np, 1.0f);
    }
  });
}

// tile_gemm where the CPU has AVX2 and FMA, unless RUBIKS_BLOCK_GEMM=blas asks for the BLAS path (read
// per call, so a benchmark or test can compare both in one process).
bool use_tile_gemm() {
#ifdef RUBIKS_TILE_GEMM
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* env = std::getenv("RUBIKS_BLOCK_GEMM");
  return cpu && !(env != nullptr && std::string(env) == "blas");
#else
  return false;
#endif
}

void check_f32_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
              "rubiks::block_forward: ", name, " must be a contiguous float32 CPU tensor");
}

}  // namespace

// The op's schema is in ext/rubiks_shift_ops.cpp.
at::Tensor block_forward_cpu(const at::Tensor& x, const at::Tensor& bn_scale, const at::Tensor& bn_shift,
                             const std::optional<at::Tensor>& time_shift, const at::Tensor& w2,
                             const at::Tensor& b2, const at::Tensor& shift, bool quantize, int64_t stride,
                             const at::Tensor& w3, const std::optional<at::Tensor>& w_shortcut,
                             int64_t num_frames) {
  TORCH_CHECK(x.dim() == 4, "rubiks::block_forward: x must be (N*T, C, H, W)");
  TORCH_CHECK(num_frames >= 1 && x.size(0) % num_frames == 0,
              "rubiks::block_forward: the batch is not a whole number of clips of num_frames");
  TORCH_CHECK(stride >= 1, "rubiks::block_forward: stride must be >= 1");
  for (const auto& [t, name] : {std::pair{&x, "x"}, {&bn_scale, "bn_scale"}, {&bn_shift, "bn_shift"},
                                {&w2, "w2"}, {&b2, "b2"}, {&w3, "w3"}})
    check_f32_cpu(*t, name);
  const int64_t Cin = x.size(1), Cmid = w2.size(0);
  TORCH_CHECK(bn_scale.numel() == Cin && bn_shift.numel() == Cin, "rubiks::block_forward: bn1 is not of x's channels");
  TORCH_CHECK(w2.dim() == 2 && w2.size(1) == Cin && b2.numel() == Cmid, "rubiks::block_forward: bad w2 / b2");
  TORCH_CHECK(w3.dim() == 2 && w3.size(0) == Cmid && w3.size(1) == Cmid, "rubiks::block_forward: bad w3");
  TORCH_CHECK(shift.dim() == 2 && shift.size(0) == 3 && shift.size(1) == Cmid,
              "rubiks::block_forward: shift must be (3, planes)");
  const bool has_sc = w_shortcut.has_value() && w_shortcut->defined();
  if (has_sc) {
    check_f32_cpu(*w_shortcut, "w_shortcut");
    TORCH_CHECK(w_shortcut->dim() == 2 && w_shortcut->size(0) == Cmid && w_shortcut->size(1) == Cin,
                "rubiks::block_forward: bad w_shortcut");
  } else {
    TORCH_CHECK(stride == 1 && Cin == Cmid, "rubiks::block_forward: an identity residual needs stride 1 and Cin == planes");
  }
  at::Tensor ts;
  if (time_shift.has_value() && time_shift->defined()) {
    ts = time_shift->to(at::kLong).contiguous();
    TORCH_CHECK(ts.device().is_cpu() && ts.numel() == Cin, "rubiks::block_forward: time_shift must have x's channels");
  }
  const int64_t H = x.size(2), W = x.size(3), T = num_frames;
  const int64_t Hd = (H - 1) / stride + 1, Wd = (W - 1) / stride + 1;
  BlockArgs a{x.size(0) / T, T, Cin, Cmid, H, W, Hd, Wd, stride, x.const_data_ptr<float>(),
              bn_scale.const_data_ptr<float>(), bn_shift.const_data_ptr<float>(),
              ts.defined() ? ts.const_data_ptr<int64_t>() : nullptr, w2.const_data_ptr<float>(),
              b2.const_data_ptr<float>(), w3.const_data_ptr<float>(),
              has_sc ? w_shortcut->const_data_ptr<float>() : nullptr, nullptr, nullptr};
  PackedWeights p2, p3;
  if (use_tile_gemm()) {
    p2 = PackedWeights(a.w2, Cmid, Cin);
    if (has_sc) {
      const at::Tensor w3sc = at::cat({w3, *w_shortcut}, 1).contiguous();
      p3 = PackedWeights(w3sc.const_data_ptr<float>(), Cmid, Cmid + Cin);
    } else {
      p3 = PackedWeights(a.w3, Cmid, Cmid);
    }
    a.p2 = &p2;
    a.p3 = &p3;
  }
  at::Tensor out = at::empty({x.size(0), Cmid, Hd, Wd}, x.options());
  if (out.numel() == 0) return out;
  const auto taps = build_channel_taps(shift, {T, H, W}, std::vector<int64_t>{1, stride, stride},
                                       std::vector<int64_t>{0, 0, 0}, quantize, false);
  std::vector<GatherTaps> wtaps;
  wtaps.reserve(Cmid);
  for (int64_t c = 0; c < Cmid; ++c) wtaps.emplace_back(taps[c][2]);
  // the frames the temporal taps read, behind and ahead of the output frame
  int64_t behind = 0, ahead = 0;
  for (const ChannelTaps& tp : taps)
    for (int k = 0; k < tp[0].ntaps; ++k)
      if (tp[0].weight[k] != 0.0) {
        behind = std::max(behind, -tp[0].off[k]);
        ahead = std::max(ahead, tp[0].off[k]);
      }
  ahead = std::min(ahead, T - 1);
  const int64_t slots = std::min(T, std::min(behind, T - 1) + 1 + ahead);
  const int64_t frame_floats = Cmid * H * W, threads = at::get_num_threads();
  const int64_t P = mid_tile(a), R = out_tile_rows(a);
  const int64_t tiles_mid = (H * W + P - 1) / P, tiles_out = (Hd + R - 1) / R;
  float* o = out.mutable_data_ptr<float>();
  if (slots < T && std::min(tiles_mid, tiles_out) >= 2 * threads) {  // frame by frame, `mid` a ring
    at::Tensor ring = at::empty({slots * frame_floats}, x.options());
    const MidFrames mid{ring.mutable_data_ptr<float>(), frame_floats, T, slots};
    for (int64_t clip0 = 0; clip0 < x.size(0); clip0 += T) {
      int64_t made = 0;  // frames of this clip in the ring so far
      for (int64_t t = 0; t < T; ++t) {
        const int64_t need = std::min(T, t + ahead + 1);
        if (made < need) block_mid(a, mid, clip0 + made, clip0 + need);
        made = need;
        block_out(a, mid, taps, wtaps, o, clip0 + t, clip0 + t + 1);
      }
    }
    return out;
  }
  at::Tensor all = at::empty({x.size(0) * frame_floats}, x.options());
  const MidFrames mid{all.mutable_data_ptr<float>(), frame_floats, T, 0};
  block_mid(a, mid, 0, x.size(0));
  block_out(a, mid, taps, wtaps, o, 0, x.size(0));
  return out;
}

TORCH_LIBRARY_IMPL(RUBIKS_LIBRARY, CPU, m) { m.impl("block_forward", &block_forward_cpu); }

}  // namespace rubiks

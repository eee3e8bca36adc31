// The block kernel's GEMM on a tile held in cache, for CPUs with AVX2 and FMA:
//   C[M x N] = epilogue(A[M x K] @ B[K x N] + init)
// with A a 1x1 convolution's weights, B the tile (row-major, the N pixels contiguous, row stride ldb),
// init zero or another tensor's rows (the block's residual, row stride ldi), and the epilogue an
// optional per-row bias and ReLU, applied while the result is in registers.
//
// Why not the BLAS: on these thin shapes (M of 54-576, K up to 864, N a few hundred pixels) MKL's sgemm packs
// the weights again on every tile, zero-fills C for beta = 0, and the bias/ReLU and the residual copy
// each cost another pass over the tile. Here the weights are packed once per op call (PackedWeights),
// a strip of 16 pixels of B is copied into a contiguous K x 16 panel (zero-padded past N, so the inner
// loop needs no masks) that stays in L1 while every 6-row block of A passes over it, and the
// micro-kernel keeps 6 rows x 16 pixels of C in 12 ymm registers: per k, one broadcast of A per row and
// two loads of B for 12 FMAs.
#pragma once

#include <cstdint>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RUBIKS_TILE_GEMM 1
#endif

namespace rubiks {

struct TileEpilogue {
  const float* init = nullptr;  // rows of the initial value (ldi apart), or null: zero
  int64_t ldi = 0;
  const float* bias = nullptr;  // per row of C, or null
  bool relu = false;
};

// A (M x K, row-major) as blocks of 6 rows, each K x 6 with the 6 rows' k-th weights adjacent; rows past
// M are zero.
struct PackedWeights {
  static constexpr int64_t kRows = 6;
  int64_t M = 0, K = 0;
  std::vector<float> data;
  PackedWeights() = default;
  PackedWeights(const float* A, int64_t m, int64_t k) : M(m), K(k), data((m + kRows - 1) / kRows * kRows * k, 0.0f) {
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < K; ++j) data[(r / kRows * K + j) * kRows + r % kRows] = A[r * K + j];
  }
  const float* block(int64_t m0) const { return data.data() + m0 * K; }  // m0 a multiple of 6
};

#ifdef RUBIKS_TILE_GEMM
namespace detail {

// mask for the first n (0..8) lanes
__attribute__((target("avx2,fma"))) inline __m256i lane_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// 8 floats, or the lanes of mask m (the others read as zero, their memory not touched)
template <bool Full>
__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p, __m256i m) {
  return Full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

// Widths of a strip of C: all 16 pixels, 9-15 (both halves masked), 1-8 (the first half masked, the
// second neither computed nor stored).
enum Cols { kFull = 16, kMasked = 15, kNarrow = 8 };

// c[0:16] = epilogue(lo, hi) for row `row` of C (the masked lanes only, unless W is kFull)
template <int W>
__attribute__((target("avx2,fma"))) inline void store_row(float* c, __m256 lo, __m256 hi, const TileEpilogue& ep,
                                                        int64_t row, __m256i mask0, __m256i mask1) {
  static_assert(W == kFull || W == kMasked || W == kNarrow);
  if (ep.bias != nullptr) {
    const __m256 bi = _mm256_set1_ps(ep.bias[row]);
    lo = _mm256_add_ps(lo, bi);
    hi = _mm256_add_ps(hi, bi);
  }
  if (ep.relu) {
    lo = _mm256_max_ps(lo, _mm256_setzero_ps());
    hi = _mm256_max_ps(hi, _mm256_setzero_ps());
  }
  if constexpr (W == kFull) {
    _mm256_storeu_ps(c, lo);
    _mm256_storeu_ps(c + 8, hi);
  } else {
    _mm256_maskstore_ps(c, mask0, lo);
    if constexpr (W == kMasked) _mm256_maskstore_ps(c + 8, mask1, hi);
  }
}

// The 16 pixels from column n0 (the first n of them, W the strip's kind) of MR rows of C from row m0;
// panel is B's strip, K x 16 contiguous. The accumulators are named variables, not an array: GCC
// keeps an array's elements in registers but also stores them back on every k (measured: 2x slower).
template <int MR, int W>
__attribute__((target("avx2,fma"))) inline void micro_tile(const PackedWeights& A, const float* panel, float* C,
                                                         int64_t ldc, const TileEpilogue& ep, int64_t m0,
                                                         int64_t n0, int64_t n) {
  const __m256i mask0 = lane_mask(n < 8 ? n : 8), mask1 = lane_mask(n > 8 ? n - 8 : 0);
  const __m256 zero = _mm256_setzero_ps();
  __m256 c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
  __m256 c30 = zero, c31 = zero, c40 = zero, c41 = zero, c50 = zero, c51 = zero;
#define RUBIKS_ROWS(X) X(0, c00, c01) X(1, c10, c11) X(2, c20, c21) X(3, c30, c31) X(4, c40, c41) X(5, c50, c51)
  if (ep.init != nullptr) {
#define RUBIKS_INIT(i, lo, hi)                          \
    if constexpr (MR > i) {                              \
      const float* r = ep.init + (m0 + i) * ep.ldi + n0; \
      lo = load8<W == kFull>(r, mask0);                  \
      if constexpr (W != kNarrow) hi = load8<W == kFull>(r + 8, mask1); \
    }
    RUBIKS_ROWS(RUBIKS_INIT)
#undef RUBIKS_INIT
  }
  const float* a = A.block(m0);
  const float* b = panel;
  const int64_t K = A.K;  // a local: read through A's reference it was loaded again every k
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k, a += PackedWeights::kRows, b += 16) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = W == kNarrow ? b0 : _mm256_loadu_ps(b + 8);
#define RUBIKS_FMA(i, lo, hi)                       \
    if constexpr (MR > i) {                          \
      const __m256 w = _mm256_broadcast_ss(a + i);   \
      lo = _mm256_fmadd_ps(w, b0, lo);               \
      if constexpr (W != kNarrow) hi = _mm256_fmadd_ps(w, b1, hi); \
    }
    RUBIKS_ROWS(RUBIKS_FMA)
#undef RUBIKS_FMA
  }
#define RUBIKS_STORE(i, lo, hi) \
  if constexpr (MR > i) store_row<W>(C + (m0 + i) * ldc + n0, lo, hi, ep, m0 + i, mask0, mask1);
  RUBIKS_ROWS(RUBIKS_STORE)
#undef RUBIKS_STORE
#undef RUBIKS_ROWS
}

// All rows of C for one strip of pixels: blocks of 6 rows, then the 1-5 left.
template <int W>
__attribute__((target("avx2,fma"))) inline void strip(const PackedWeights& A, const float* panel, float* C,
                                                    int64_t ldc, const TileEpilogue& ep, int64_t n0, int64_t n) {
  int64_t m0 = 0;
  for (; m0 + 6 <= A.M; m0 += 6) micro_tile<6, W>(A, panel, C, ldc, ep, m0, n0, n);
  switch (A.M - m0) {
    case 5: return micro_tile<5, W>(A, panel, C, ldc, ep, m0, n0, n);
    case 4: return micro_tile<4, W>(A, panel, C, ldc, ep, m0, n0, n);
    case 3: return micro_tile<3, W>(A, panel, C, ldc, ep, m0, n0, n);
    case 2: return micro_tile<2, W>(A, panel, C, ldc, ep, m0, n0, n);
    case 1: return micro_tile<1, W>(A, panel, C, ldc, ep, m0, n0, n);
    default: return;
  }
}

}  // namespace detail

// C[M x N] (row stride ldc) = epilogue(A @ B[K x N] (row stride ldb) + init). Only for CPUs with AVX2
// and FMA (the caller checks). panel: K x 16 floats of scratch.
__attribute__((target("avx2,fma"))) inline void tile_gemm(const PackedWeights& A, const float* B, int64_t ldb,
                                                          float* C, int64_t ldc, int64_t N, const TileEpilogue& ep,
                                                          float* panel) {
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int64_t n = N - n0 < 16 ? N - n0 : 16;
    const float* b = B + n0;
    if (n == 16) {
      for (int64_t k = 0; k < A.K; ++k, b += ldb) {
        _mm256_storeu_ps(panel + k * 16, _mm256_loadu_ps(b));
        _mm256_storeu_ps(panel + k * 16 + 8, _mm256_loadu_ps(b + 8));
      }
      detail::strip<detail::kFull>(A, panel, C, ldc, ep, n0, 16);
    } else {
      const __m256i mask0 = detail::lane_mask(n < 8 ? n : 8), mask1 = detail::lane_mask(n > 8 ? n - 8 : 0);
      for (int64_t k = 0; k < A.K; ++k, b += ldb) {
        _mm256_storeu_ps(panel + k * 16, _mm256_maskload_ps(b, mask0));
        _mm256_storeu_ps(panel + k * 16 + 8, _mm256_maskload_ps(b + 8, mask1));
      }
      if (n > 8) detail::strip<detail::kMasked>(A, panel, C, ldc, ep, n0, n);
      else detail::strip<detail::kNarrow>(A, panel, C, ldc, ep, n0, n);
    }
  }
}
#else
// Not x86-64: never called (use_tile_gemm() is false), here so the caller compiles.
inline void tile_gemm(const PackedWeights&, const float*, int64_t, float*, int64_t, int64_t, const TileEpilogue&,
                      float*) {}
#endif

}  // namespace rubiks

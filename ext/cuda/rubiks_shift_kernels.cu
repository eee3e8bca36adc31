// CUDA kernels of the RubiksShift operator (forward, input gradient, shift
// gradient); the launch API is in rubiks_shift_kernels.h, the per-block work in
// rubiks_shift_device.cuh. ATen-free.
//
// Every kernel launches one block per (channel, chunk of about kElemsPerBlock
// elements of consecutive (n, t) planes) with kThreads threads that walk the
// chunk in memory order; per-channel taps are computed on the device from the
// shift pointer (shift_taps.h, shared with the CPU kernels).
#include "rubiks_shift_kernels.h"

namespace rubiks {
namespace gpu {
namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    stencil_kernel(const scalar_t* __restrict__ src, scalar_t* __restrict__ dst,
                   const scalar_t* __restrict__ shift, const Plan p) {
  stencil_block(src, dst, shift, p, static_cast<int64_t>(blockIdx.x), threadIdx.x, blockDim.x);
}

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Block b writes partial[3 b + axis]: its elements' sums, reduced in registers,
// then across each warp (shuffles), then across the warps (shared memory).
// Needs blockDim.x a multiple of 32 (kThreads); every thread reaches the shuffles.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    shift_grad_partial_kernel(const scalar_t* __restrict__ grad_out,
                              const scalar_t* __restrict__ x, const scalar_t* __restrict__ shift,
                              typename AccType<scalar_t>::type* __restrict__ partial,
                              const Plan p) {
  using acc_t = typename AccType<scalar_t>::type;
  __shared__ acc_t warp_sums[3][32];
  const Sums3<acc_t> s = shift_grad_thread(grad_out, x, shift, p,
                                           static_cast<int64_t>(blockIdx.x), threadIdx.x,
                                           blockDim.x);
  acc_t v[3] = {warp_sum(s.t), warp_sum(s.h), warp_sum(s.w)};
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned warps = (blockDim.x + 31u) >> 5;
  if (lane == 0) {
#pragma unroll
    for (int a = 0; a < 3; ++a) warp_sums[a][warp] = v[a];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int a = 0; a < 3; ++a) v[a] = warp_sum(lane < warps ? warp_sums[a][lane] : acc_t(0));
    if (lane == 0) {
#pragma unroll
      for (int a = 0; a < 3; ++a) partial[static_cast<int64_t>(blockIdx.x) * 3 + a] = v[a];
    }
  }
}

template <typename scalar_t>
__global__ void shift_grad_finalize_kernel(const typename AccType<scalar_t>::type* __restrict__ partial,
                                           scalar_t* __restrict__ grad_shift, int64_t C,
                                           int64_t chunks) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < 3 * C) shift_grad_finalize_one(partial, grad_shift, C, chunks, i);
}

}  // namespace

template <typename scalar_t>
void shift3d_forward(const scalar_t* x, const scalar_t* shift, scalar_t* out, const Shape3d& shape,
                     bool quantize, cudaStream_t stream) {
  const Plan p = make_plan(shape, /*adjoint=*/false, quantize);
  if (p.blocks() == 0) return;
  stencil_kernel<scalar_t><<<static_cast<unsigned>(p.blocks()), kThreads, 0, stream>>>(x, out,
                                                                                       shift, p);
}

template <typename scalar_t>
void shift3d_grad_input(const scalar_t* grad_out, const scalar_t* shift, scalar_t* grad_x,
                        const Shape3d& shape, bool quantize, cudaStream_t stream) {
  const Plan p = make_plan(shape, /*adjoint=*/true, quantize);
  if (p.blocks() == 0) return;
  stencil_kernel<scalar_t><<<static_cast<unsigned>(p.blocks()), kThreads, 0, stream>>>(
      grad_out, grad_x, shift, p);
}

template <typename scalar_t>
void shift3d_grad_shift(const scalar_t* grad_out, const scalar_t* x, const scalar_t* shift,
                        scalar_t* grad_shift, typename AccType<scalar_t>::type* workspace,
                        const Shape3d& shape, cudaStream_t stream) {
  // the shift gradient is always that of the interpolated op (straight-through for RS-Q)
  const Plan p = make_plan(shape, /*adjoint=*/false, /*quantize=*/false);
  if (p.blocks() == 0 || shape.C <= 0) return;
  shift_grad_partial_kernel<scalar_t><<<static_cast<unsigned>(p.blocks()), kThreads, 0, stream>>>(
      grad_out, x, shift, workspace, p);
  const int64_t n = 3 * shape.C;
  const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  shift_grad_finalize_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(workspace, grad_shift,
                                                                        shape.C, p.chunks);
}

#define RUBIKS_INSTANTIATE_SHIFT_KERNELS(T)                                                   \
  template void shift3d_forward<T>(const T*, const T*, T*, const Shape3d&, bool, cudaStream_t); \
  template void shift3d_grad_input<T>(const T*, const T*, T*, const Shape3d&, bool,           \
                                      cudaStream_t);                                          \
  template void shift3d_grad_shift<T>(const T*, const T*, const T*, T*,                       \
                                      typename AccType<T>::type*, const Shape3d&, cudaStream_t);
RUBIKS_INSTANTIATE_SHIFT_KERNELS(float)
RUBIKS_INSTANTIATE_SHIFT_KERNELS(double)
RUBIKS_INSTANTIATE_SHIFT_KERNELS(__half)
RUBIKS_INSTANTIATE_SHIFT_KERNELS(__nv_bfloat16)
#undef RUBIKS_INSTANTIATE_SHIFT_KERNELS

}  // namespace gpu
}  // namespace rubiks

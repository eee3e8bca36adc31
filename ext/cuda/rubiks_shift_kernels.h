// CUDA kernels of the RubiksShift operator: the launch API. ATen-free (only
// the CUDA runtime and the half types), so the kernels compile with a bare
// `nvcc -c` and the host launcher (rubiks_shift_cuda.cpp) is the only place
// that knows about torch.
//
// Layout: x (N, T, C, H, W) and every other activation tensor contiguous,
// shift (3, C) contiguous with rows [T, H, W], all on the current device.
// Scalar types: float, double, __half, __nv_bfloat16; arithmetic in float for
// the half types and float, in double for double.
//
// Each function only enqueues kernels on `stream` (the caller passes the
// current torch stream) and returns at once; it neither synchronises nor
// reads device memory on the host. Check cudaGetLastError() afterwards
// (C10_CUDA_KERNEL_LAUNCH_CHECK in the launcher). Call them only for
// non-empty outputs of a problem that unsupported_reason() accepts.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rubiks_shift_device.cuh"

namespace rubiks {
namespace gpu {

// out (N, T', C, H', W') = shift(x); quantize: RS-Q (rounded shift, one tap per axis).
template <typename scalar_t>
void shift3d_forward(const scalar_t* x, const scalar_t* shift, scalar_t* out, const Shape3d& shape,
                     bool quantize, cudaStream_t stream);

// grad_x (N, T, C, H, W) = adjoint of the (quantized) forward applied to grad_out.
template <typename scalar_t>
void shift3d_grad_input(const scalar_t* grad_out, const scalar_t* shift, scalar_t* grad_x,
                        const Shape3d& shape, bool quantize, cudaStream_t stream);

// grad_shift (3, C) of the interpolated op (also for RS-Q: straight-through).
// `workspace` holds grad_shift_workspace_elems(shape) elements of
// AccType<scalar_t>::type (float, or double for double); no initialisation needed.
//
// Reduction: one block per (channel, chunk of planes) sums its elements in
// registers, then across the block with warp shuffles and shared memory, and
// writes its 3 partial sums to the workspace; a second small kernel adds each
// channel's partials in chunk order and casts to scalar_t. No atomics, so the
// result is the same from run to run.
template <typename scalar_t>
void shift3d_grad_shift(const scalar_t* grad_out, const scalar_t* x, const scalar_t* shift,
                        scalar_t* grad_shift, typename AccType<scalar_t>::type* workspace,
                        const Shape3d& shape, cudaStream_t stream);

#define RUBIKS_DECLARE_SHIFT_KERNELS(T)                                                         \
  extern template void shift3d_forward<T>(const T*, const T*, T*, const Shape3d&, bool,         \
                                          cudaStream_t);                                        \
  extern template void shift3d_grad_input<T>(const T*, const T*, T*, const Shape3d&, bool,      \
                                             cudaStream_t);                                     \
  extern template void shift3d_grad_shift<T>(const T*, const T*, const T*, T*,                  \
                                             typename AccType<T>::type*, const Shape3d&,        \
                                             cudaStream_t);
RUBIKS_DECLARE_SHIFT_KERNELS(float)
RUBIKS_DECLARE_SHIFT_KERNELS(double)
RUBIKS_DECLARE_SHIFT_KERNELS(__half)
RUBIKS_DECLARE_SHIFT_KERNELS(__nv_bfloat16)
#undef RUBIKS_DECLARE_SHIFT_KERNELS

}  // namespace gpu
}  // namespace rubiks

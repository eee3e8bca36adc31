// CUDA backend of the RubiksShift ops: the shared prologue, device guard, stream,
// dtype dispatch, and the TORCH_LIBRARY_IMPL registrations. The kernels
// themselves are ATen-free (rubiks_shift_kernels.cu). Compiled only when the
// extension is built with CUDA (setup.py defines RUBIKS_WITH_CUDA then).
//
// Autocast: under torch.autocast("cuda") the forward ops (shift3d, shift2d)
// run in the dtype of x: the AutocastCUDA kernels cast the shift to x's dtype
// (a differentiable cast, so a float32 shift parameter still receives its
// gradient, in float32) and redispatch. The op is memory-bound, so it gains
// nothing from a lower precision of its own; it just follows its input.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../rubiks_shift_prologue.h"
#include "rubiks_shift_kernels.h"

namespace rubiks {
namespace {

// at::Half / at::BFloat16 have the bit layout of CUDA's __half / __nv_bfloat16.
template <typename T>
struct CudaScalar {
  using type = T;
};
template <>
struct CudaScalar<at::Half> {
  using type = __half;
};
template <>
struct CudaScalar<at::BFloat16> {
  using type = __nv_bfloat16;
};

template <typename T>
const typename CudaScalar<T>::type* cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename CudaScalar<T>::type*>(t.const_data_ptr<T>());
}
template <typename T>
typename CudaScalar<T>::type* cuda_mutable_ptr(at::Tensor& t) {
  return reinterpret_cast<typename CudaScalar<T>::type*>(t.mutable_data_ptr<T>());
}

// The kernels' view of a checked geometry; rejects what their 32-bit block and
// plane indices cannot address.
gpu::Shape3d shape_of(const Geometry& g) {
  gpu::Shape3d s;
  s.N = g.N;
  s.C = g.C;
  for (int a = 0; a < 3; ++a) {
    s.in[a] = g.in[a];
    s.stride[a] = g.stride[a];
    s.pad[a] = g.padding[a];
  }
  const char* why = gpu::unsupported_reason(s);
  TORCH_CHECK(why == nullptr, "rubiks shift3d: input of shape ", g.in_size(), ": ", why);
  return s;
}

at::Tensor shift3d_cuda(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                        at::IntArrayRef padding, bool quantize) {
  const Geometry g = check_forward(x, shift, stride, padding, at::kCUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  at::Tensor out = at::empty(g.out_size(), x.options());
  if (out.numel() == 0) return out;
  const gpu::Shape3d shape = shape_of(g);
  const at::Tensor xc = x.contiguous(), sc = shift.contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "rubiks_shift3d_cuda",
                                  [&] {
                                    gpu::shift3d_forward(cuda_ptr<scalar_t>(xc),
                                                         cuda_ptr<scalar_t>(sc),
                                                         cuda_mutable_ptr<scalar_t>(out), shape,
                                                         quantize, stream);
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
  return out;
}

at::Tensor shift3d_grad_input_cuda(const at::Tensor& grad_out, const at::Tensor& shift,
                                   at::IntArrayRef input_size, at::IntArrayRef stride,
                                   at::IntArrayRef padding, bool quantize) {
  const Geometry g = check_grad_input(grad_out, shift, input_size, stride, padding, at::kCUDA);
  const c10::cuda::CUDAGuard device_guard(grad_out.device());
  at::Tensor grad_x = at::empty(g.in_size(), grad_out.options());
  if (grad_x.numel() == 0) return grad_x;
  const gpu::Shape3d shape = shape_of(g);
  const at::Tensor gc = grad_out.contiguous(), sc = shift.contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(),
                                  "rubiks_shift3d_grad_input_cuda", [&] {
                                    gpu::shift3d_grad_input(cuda_ptr<scalar_t>(gc),
                                                            cuda_ptr<scalar_t>(sc),
                                                            cuda_mutable_ptr<scalar_t>(grad_x),
                                                            shape, quantize, stream);
                                    C10_CUDA_KERNEL_LAUNCH_CHECK();
                                  });
  return grad_x;
}

at::Tensor shift3d_grad_shift_cuda(const at::Tensor& grad_out, const at::Tensor& x,
                                   const at::Tensor& shift, at::IntArrayRef stride,
                                   at::IntArrayRef padding) {
  const Geometry g = check_grad_shift(grad_out, x, shift, stride, padding, at::kCUDA);
  const c10::cuda::CUDAGuard device_guard(x.device());
  at::Tensor grad_shift = new_shift_grad(shift);
  if (grad_out.numel() == 0) return grad_shift;
  const gpu::Shape3d shape = shape_of(g);
  const at::Tensor xc = x.contiguous(), gc = grad_out.contiguous(), sc = shift.contiguous();
  // partial sums in float32 (float64 for double), one triple per block; cast at the end
  const at::ScalarType acc_dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor workspace =
      at::empty({gpu::grad_shift_workspace_elems(shape)}, x.options().dtype(acc_dtype));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "rubiks_shift3d_grad_shift_cuda", [&] {
        using acc_t = typename gpu::AccType<typename CudaScalar<scalar_t>::type>::type;
        gpu::shift3d_grad_shift(cuda_ptr<scalar_t>(gc), cuda_ptr<scalar_t>(xc),
                                cuda_ptr<scalar_t>(sc), cuda_mutable_ptr<scalar_t>(grad_shift),
                                workspace.mutable_data_ptr<acc_t>(), shape, stream);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad_shift;
}

// ---- autocast -------------------------------------------------------------
// Below the AutocastCUDA key: cast the shift to x's dtype, then call the op again
// with autocast excluded (autograd, above the backend, records the cast).
template <const char* name>
at::Tensor shift_autocast(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                          at::IntArrayRef padding, bool quantize) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<
      at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef, bool)>();
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  const bool cast = x.is_floating_point() && shift.is_floating_point() &&
                    shift.scalar_type() != x.scalar_type();
  return op.call(x, cast ? shift.to(x.scalar_type()) : shift, stride, padding, quantize);
}

constexpr char kShift3d[] = "rubiks::shift3d";
constexpr char kShift2d[] = "rubiks::shift2d";

}  // namespace

TORCH_LIBRARY_IMPL(rubiks, CUDA, m) {
  m.impl("shift3d", &shift3d_cuda);
  m.impl("shift3d_grad_input", &shift3d_grad_input_cuda);
  m.impl("shift3d_grad_shift", &shift3d_grad_shift_cuda);
}

TORCH_LIBRARY_IMPL(rubiks, AutocastCUDA, m) {
  m.impl("shift3d", &shift_autocast<kShift3d>);
  m.impl("shift2d", &shift_autocast<kShift2d>);
}

}  // namespace rubiks

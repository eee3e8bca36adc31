// The torch.library face of the operator: op schemas (in one place), the 2D
// ops as composites of the 3D ones, and the pybind11 module that Python
// imports to load this library. Autograd and fake (meta) kernels are
// registered from Python (rubiks_service/ops/_registration.py).
#include <torch/extension.h>
#include <torch/library.h>

#include "rubiks_shift_prologue.h"

namespace rubiks {
namespace {

// ---- 2D ops: (N, C, H, W) with shift (2, C) rows [H, W] -------------------
// They are the 3D op on a single frame with a zero temporal shift, so every
// backend that implements the 3D op gets them for free.

// The 2D guards only cover what the 2D -> 3D mapping itself indexes; the 3D
// op's prologue checks the rest.
void check_shift2d(int64_t x_dim, const at::Tensor& shift, int64_t channels, at::IntArrayRef stride,
                   at::IntArrayRef padding) {
  check_rank(2, x_dim, stride, padding);
  check_shift_shape(2, shift, channels);
}

at::Tensor shift_as_3d(const at::Tensor& shift2d) {
  return at::cat({at::zeros({1, shift2d.size(1)}, shift2d.options()), shift2d}, 0);
}

std::vector<int64_t> thw_args(at::IntArrayRef hw, int64_t t) { return {t, hw[0], hw[1]}; }

const auto& shift3d_op() {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("rubiks::shift3d", "").typed<
      at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef, bool)>();
  return op;
}
const auto& grad_input3d_op() {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("rubiks::shift3d_grad_input", "").typed<
          at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef, at::IntArrayRef,
                     at::IntArrayRef, bool)>();
  return op;
}
const auto& grad_shift3d_op() {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("rubiks::shift3d_grad_shift", "").typed<
          at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                     at::IntArrayRef)>();
  return op;
}

at::Tensor shift2d(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                   at::IntArrayRef padding, bool quantize) {
  check_shift2d(x.dim(), shift, x.dim() == 4 ? x.size(1) : -1, stride, padding);
  return shift3d_op()
      .call(x.unsqueeze(1), shift_as_3d(shift), thw_args(stride, 1), thw_args(padding, 0), quantize)
      .squeeze(1);
}

at::Tensor shift2d_grad_input(const at::Tensor& grad_out, const at::Tensor& shift,
                              c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                              at::IntArrayRef padding, bool quantize) {
  check_shift2d(input_size.size(), shift, input_size.size() == 4 ? input_size[1].guard_int(__FILE__, __LINE__) : -1,
                stride, padding);
  std::vector<c10::SymInt> size3d{input_size[0], 1, input_size[1], input_size[2], input_size[3]};
  return grad_input3d_op()
      .call(grad_out.unsqueeze(1), shift_as_3d(shift), size3d, thw_args(stride, 1),
            thw_args(padding, 0), quantize)
      .squeeze(1);
}

at::Tensor shift2d_grad_shift(const at::Tensor& grad_out, const at::Tensor& x,
                              const at::Tensor& shift, at::IntArrayRef stride,
                              at::IntArrayRef padding) {
  check_shift2d(x.dim(), shift, x.dim() == 4 ? x.size(1) : -1, stride, padding);
  return grad_shift3d_op()
      .call(grad_out.unsqueeze(1), x.unsqueeze(1), shift_as_3d(shift), thw_args(stride, 1),
            thw_args(padding, 0))
      .narrow(0, 1, 2)
      .clone();  // a fresh tensor, not a view at an offset into the 3-row one
}

}  // namespace

TORCH_LIBRARY(rubiks, m) {
  // out[n,t,c,h,w] = trilinear sample of x[n,:,c] at
  //   (t*sT - pT + shift[0,c], h*sH - pH + shift[1,c], w*sW - pW + shift[2,c]), zero outside.
  m.def("shift3d(Tensor x, Tensor shift, int[] stride, int[] padding, bool quantize) -> Tensor");
  m.def("shift3d_grad_input(Tensor grad_out, Tensor shift, SymInt[] input_size, int[] stride, "
        "int[] padding, bool quantize) -> Tensor");
  m.def("shift3d_grad_shift(Tensor grad_out, Tensor x, Tensor shift, int[] stride, "
        "int[] padding) -> Tensor");
  m.def("shift2d(Tensor x, Tensor shift, int[] stride, int[] padding, bool quantize) -> Tensor");
  m.def("shift2d_grad_input(Tensor grad_out, Tensor shift, SymInt[] input_size, int[] stride, "
        "int[] padding, bool quantize) -> Tensor");
  m.def("shift2d_grad_shift(Tensor grad_out, Tensor x, Tensor shift, int[] stride, "
        "int[] padding) -> Tensor");
  // The inference form of a whole RubiksNet block (x: (N*T, C, H, W); ext/cpu/rubiks_block_cpu.cpp):
  //   pre = relu(x * bn_scale + bn_shift);  mid = relu(w2 @ tshift(pre) + b2)
  //   out = w3 @ shift3d(mid, shift, (1, stride, stride)) + (w_shortcut @ pre[::stride, ::stride] or x)
  // tshift: the integer temporal shift per channel (RS-AQ) when time_shift is given.
  m.def("block_forward(Tensor x, Tensor bn_scale, Tensor bn_shift, Tensor? time_shift, Tensor w2, Tensor b2, "
        "Tensor shift, bool quantize, int stride, Tensor w3, Tensor? w_shortcut, int num_frames) -> Tensor");
}

TORCH_LIBRARY_IMPL(rubiks, CompositeExplicitAutograd, m) {
  m.impl("shift2d", &shift2d);
  m.impl("shift2d_grad_input", &shift2d_grad_input);
  m.impl("shift2d_grad_shift", &shift2d_grad_shift);
}

}  // namespace rubiks

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "RubiksShift kernels; the ops live under torch.ops.rubiks";
  m.def("compiled_with_cuda", [] {
#ifdef RUBIKS_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  m.def("parallel_info", [] { return at::get_parallel_info(); },
        "ATen's thread-pool description (OpenMP) used by the CPU kernels");
}

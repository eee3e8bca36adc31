// The prologue every backend's wrapper runs before its kernel, shared by the op
// registration (the 2D composites) and the CPU and CUDA wrappers.
//
// The readable validation of the public API is Python's
// (rubiks_service/ops/_checks.py). These are only the cheap guards that keep a
// direct torch.ops.rubiks.* call from indexing out of bounds: ranks and sizes
// the kernels index by, and the dtype and device of every operand. They raise
// c10::Error (RuntimeError in Python).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <vector>

namespace rubiks {

// A rank-`rank` op (3: x (N, T, C, H, W); 2: x (N, C, H, W)) needs x of rank + 2
// dims and `rank` stride and padding entries.
void check_rank(int rank, int64_t x_dim, at::IntArrayRef stride, at::IntArrayRef padding);

// shift must be (rank, channels).
void check_shift_shape(int rank, const at::Tensor& shift, int64_t channels);

// The checked geometry of one call of a 3D op; axes in the order (T, H, W).
struct Geometry {
  int64_t N = 0, C = 0;
  std::array<int64_t, 3> in{}, out{}, stride{}, padding{};

  std::vector<int64_t> in_size() const { return {N, in[0], C, in[1], in[2]}; }
  std::vector<int64_t> out_size() const { return {N, out[0], C, out[1], out[2]}; }
};

// Prologues of the three 3D ops. Each checks ranks, the shift's shape, stride
// >= 1, padding >= 0 and a non-empty output along every axis, that every tensor
// has the shift's dtype and device, that the device is of type `device`, and
// (gradients) that grad_out has the output's shape.
Geometry check_forward(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::DeviceType device);
Geometry check_grad_input(const at::Tensor& grad_out, const at::Tensor& shift,
                          at::IntArrayRef input_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::DeviceType device);
Geometry check_grad_shift(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& shift,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::DeviceType device);

// The shift gradient's buffer, in both backends: (3, C) contiguous zeros (the
// kernels write every entry of a non-empty problem; an empty one's gradient is 0).
at::Tensor new_shift_grad(const at::Tensor& shift);

}  // namespace rubiks

// Declarations shared by the op registration and the per-backend kernels.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <vector>

#include "shift_taps.h"

namespace rubiks {

// Validates the shapes of the 3D op (x: (N, T, C, H, W), shift: (3, C)) and
// returns the output size (N, T', C, H', W'). Raises a clear error
// (c10::Error -> RuntimeError in Python) instead of crashing.
std::vector<int64_t> shift3d_output_size(at::IntArrayRef x_size, const at::Tensor& shift,
                                         at::IntArrayRef stride, at::IntArrayRef padding);

// Checks that `t` has the dtype and device of `like` (the shift parameter).
void check_same_kind(const at::Tensor& t, const char* name, const at::Tensor& like);

// Checks that a gradient has the expected output shape, dtype and device.
void check_grad_out(const at::Tensor& grad_out, const std::vector<int64_t>& expected,
                    const at::Tensor& like);

// Per-channel T, H, W taps of the forward gather (adjoint=false) or of its
// adjoint (adjoint=true), built on the host from the shift values.
using ChannelTaps = std::array<AxisTaps, 3>;
std::vector<ChannelTaps> build_channel_taps(const at::Tensor& shift,
                                            const std::array<int64_t, 3>& input_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            bool quantize, bool adjoint);

}  // namespace rubiks

// Per-channel taps of the CPU kernels, built on the host from the shift values.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <vector>

#include "../shift_taps.h"

namespace rubiks {

// The T, H, W taps of one channel: of the forward gather (adjoint=false) or of
// its adjoint (adjoint=true).
using ChannelTaps = std::array<AxisTaps, 3>;
std::vector<ChannelTaps> build_channel_taps(const at::Tensor& shift,
                                            const std::array<int64_t, 3>& input_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            bool quantize, bool adjoint);

}  // namespace rubiks

// Per-channel taps of the CPU kernels (channel_taps.h).
#include "channel_taps.h"

namespace rubiks {

std::vector<ChannelTaps> build_channel_taps(const at::Tensor& shift,
                                            const std::array<int64_t, 3>& input_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            bool quantize, bool adjoint) {
  const at::Tensor s = shift.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* sp = s.data_ptr<double>();
  const int64_t C = s.size(1);
  std::vector<ChannelTaps> taps(C);
  for (int64_t c = 0; c < C; ++c) {
    for (int a = 0; a < 3; ++a) {
      const AxisTaps fwd = forward_taps(input_size[a], stride[a], padding[a], sp[a * C + c], quantize);
      taps[c][a] = adjoint ? adjoint_taps(fwd) : fwd;
    }
  }
  return taps;
}

}  // namespace rubiks

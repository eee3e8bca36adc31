// Argument validation and tap construction shared by every backend.
#include "rubiks_shift.h"

namespace rubiks {

std::vector<int64_t> shift3d_output_size(at::IntArrayRef x_size, const at::Tensor& shift,
                                         at::IntArrayRef stride, at::IntArrayRef padding) {
  TORCH_CHECK(x_size.size() == 5, "rubiks shift3d: x must have shape (N, T, C, H, W), got ",
              x_size.size(), "-D shape ", x_size);
  TORCH_CHECK(shift.dim() == 2 && shift.size(0) == 3 && shift.size(1) == x_size[2],
              "rubiks shift3d: shift must have shape (3, C) = (3, ", x_size[2], "), got ",
              shift.sizes());
  TORCH_CHECK(at::isFloatingType(shift.scalar_type()),
              "rubiks shift3d: shift must be a floating tensor, got ", shift.scalar_type());
  TORCH_CHECK(stride.size() == 3 && padding.size() == 3,
              "rubiks shift3d: stride and padding need 3 entries (T, H, W)");
  std::vector<int64_t> out{x_size[0], 0, x_size[2], 0, 0};
  const int64_t dims[3] = {1, 3, 4};
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK(stride[a] >= 1, "rubiks shift3d: stride must be >= 1, got ", stride);
    TORCH_CHECK(padding[a] >= 0, "rubiks shift3d: padding must be >= 0, got ", padding);
    const int64_t n = shift_output_size(x_size[dims[a]], stride[a], padding[a]);
    TORCH_CHECK(n > 0, "rubiks shift3d: empty output along axis ", "THW"[a], " (input size ",
                x_size[dims[a]], ", stride ", stride[a], ", padding ", padding[a], ")");
    out[dims[a]] = n;
  }
  return out;
}

void check_same_kind(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "rubiks shift3d: dtype mismatch, ", name,
              " is ", t.scalar_type(), " but shift is ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "rubiks shift3d: ", name, " is on ", t.device(),
              " but shift is on ", like.device());
}

void check_grad_out(const at::Tensor& grad_out, const std::vector<int64_t>& expected,
                    const at::Tensor& like) {
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected),
              "rubiks shift3d: grad_out has shape ", grad_out.sizes(), ", expected ",
              at::IntArrayRef(expected));
  check_same_kind(grad_out, "grad_out", like);
}

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

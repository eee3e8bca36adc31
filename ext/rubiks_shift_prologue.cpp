// The guards and geometry of the shared prologue (rubiks_shift_prologue.h).
#include "rubiks_shift_prologue.h"

#include "shift_taps.h"

namespace rubiks {
namespace {

const char* op_name(int rank) { return rank == 3 ? "rubiks shift3d" : "rubiks shift2d"; }

void check_same_kind(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "rubiks shift3d: dtype mismatch, ", name,
              " is ", t.scalar_type(), " but shift is ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "rubiks shift3d: ", name, " is on ", t.device(),
              " but shift is on ", like.device());
}

void check_device(const at::Tensor& shift, at::DeviceType device) {
  TORCH_CHECK(shift.device().type() == device, "rubiks shift3d: the tensors must be on ",
              at::DeviceTypeName(device), ", got ", shift.device());
}

// Ranks, shift shape, strides, paddings and output sizes of a 3D call.
Geometry geometry(at::IntArrayRef x_size, const at::Tensor& shift, at::IntArrayRef stride,
                  at::IntArrayRef padding) {
  check_rank(3, static_cast<int64_t>(x_size.size()), stride, padding);
  check_shift_shape(3, shift, x_size[2]);
  Geometry g;
  g.N = x_size[0];
  g.C = x_size[2];
  const int64_t dims[3] = {1, 3, 4};
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK(stride[a] >= 1, "rubiks shift3d: stride must be >= 1, got ", stride);
    TORCH_CHECK(padding[a] >= 0, "rubiks shift3d: padding must be >= 0, got ", padding);
    g.in[a] = x_size[dims[a]];
    g.stride[a] = stride[a];
    g.padding[a] = padding[a];
    g.out[a] = shift_output_size(g.in[a], stride[a], padding[a]);
    TORCH_CHECK(g.out[a] > 0, "rubiks shift3d: empty output along axis ", "THW"[a], " (input size ",
                g.in[a], ", stride ", stride[a], ", padding ", padding[a], ")");
  }
  return g;
}

void check_grad_out(const at::Tensor& grad_out, const Geometry& g, const at::Tensor& shift) {
  const std::vector<int64_t> expected = g.out_size();
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), "rubiks shift3d: grad_out has shape ",
              grad_out.sizes(), ", expected ", at::IntArrayRef(expected));
  check_same_kind(grad_out, "grad_out", shift);
}

}  // namespace

void check_rank(int rank, int64_t x_dim, at::IntArrayRef stride, at::IntArrayRef padding) {
  TORCH_CHECK(x_dim == rank + 2, op_name(rank), ": x must have shape ",
              rank == 3 ? "(N, T, C, H, W)" : "(N, C, H, W)", ", got ", x_dim, "-D");
  TORCH_CHECK(static_cast<int>(stride.size()) == rank && static_cast<int>(padding.size()) == rank,
              op_name(rank), ": stride and padding need ", rank, " entries (",
              rank == 3 ? "T, H, W" : "H, W", ")");
}

void check_shift_shape(int rank, const at::Tensor& shift, int64_t channels) {
  TORCH_CHECK(shift.dim() == 2 && shift.size(0) == rank && shift.size(1) == channels, op_name(rank),
              ": shift must have shape (", rank, ", C) = (", rank, ", ", channels, "), got ",
              shift.sizes());
}

Geometry check_forward(const at::Tensor& x, const at::Tensor& shift, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::DeviceType device) {
  const Geometry g = geometry(x.sizes(), shift, stride, padding);
  check_same_kind(x, "x", shift);
  check_device(shift, device);
  return g;
}

Geometry check_grad_input(const at::Tensor& grad_out, const at::Tensor& shift,
                          at::IntArrayRef input_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::DeviceType device) {
  const Geometry g = geometry(input_size, shift, stride, padding);
  check_grad_out(grad_out, g, shift);
  check_device(shift, device);
  return g;
}

Geometry check_grad_shift(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& shift,
                          at::IntArrayRef stride, at::IntArrayRef padding, at::DeviceType device) {
  const Geometry g = geometry(x.sizes(), shift, stride, padding);
  check_same_kind(x, "x", shift);
  check_grad_out(grad_out, g, shift);
  check_device(shift, device);
  return g;
}

at::Tensor new_shift_grad(const at::Tensor& shift) {
  return at::zeros(shift.sizes(), shift.options().memory_format(at::MemoryFormat::Contiguous));
}

}  // namespace rubiks

// Runs the CUDA kernels' per-block code on the host, block by block and thread
// by thread (no GPU needed); built and driven by tests/ops/test_cuda_compile.py.
// Usage:
//   block_emulator divmod
//   block_emulator OP DTYPE QUANTIZE N C T H W sT sH sW pT pH pW IN... OUT
// OP: fwd (in: x shift), gin (in: grad_out shift), gshift (in: grad_out x shift).
// DTYPE: f32 f64 f16 bf16; tensors are raw little-endian files.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/rubiks_shift_device.cuh"

using namespace rubiks::gpu;

template <typename T>
std::vector<T> load(const char* path, size_t n) {
  std::vector<T> v(n);
  FILE* f = std::fopen(path, "rb");
  if (!f) { std::perror(path); std::exit(2); }
  if (n && std::fread(v.data(), sizeof(T), n, f) != n) { std::fprintf(stderr, "short read %s\n", path); std::exit(2); }
  std::fclose(f);
  return v;
}

template <typename T>
void save(const char* path, const std::vector<T>& v) {
  FILE* f = std::fopen(path, "wb");
  if (!f) { std::perror(path); std::exit(2); }
  if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), f);
  std::fclose(f);
}

template <typename T>
std::vector<T> nan_filled(size_t n) {  // unwritten elements stay NaN
  using acc_t = typename AccType<T>::type;
  return std::vector<T>(n, from_acc<T>(static_cast<acc_t>(NAN)));
}

template <typename T>
int run(const std::string& op, const Shape3d& s, bool quantize, char** files) {
  int64_t out[3];
  output_sizes(s, out);
  const size_t in_n = s.N * s.C * s.in[0] * s.in[1] * s.in[2];
  const size_t out_n = s.N * s.C * out[0] * out[1] * out[2];
  if (const char* why = unsupported_reason(s)) { std::fprintf(stderr, "%s\n", why); return 3; }
  if (op == "fwd" || op == "gin") {
    const bool adjoint = op == "gin";
    const auto src = load<T>(files[0], adjoint ? out_n : in_n);
    const auto shift = load<T>(files[1], 3 * s.C);
    auto dst = nan_filled<T>(adjoint ? in_n : out_n);
    const Plan p = make_plan(s, adjoint, quantize);
    for (int64_t b = 0; b < p.blocks(); ++b)
      for (uint32_t t = 0; t < kThreads; ++t)
        stencil_block(src.data(), dst.data(), shift.data(), p, b, t, kThreads);
    save(files[2], dst);
  } else if (op == "gshift") {
    using acc_t = typename AccType<T>::type;
    const auto g = load<T>(files[0], out_n);
    const auto x = load<T>(files[1], in_n);
    const auto shift = load<T>(files[2], 3 * s.C);
    const Plan p = make_plan(s, false, false);
    std::vector<acc_t> partial(grad_shift_workspace_elems(s), static_cast<acc_t>(NAN));
    for (int64_t b = 0; b < p.blocks(); ++b) {
      acc_t sum[3] = {0, 0, 0};
      for (uint32_t t = 0; t < kThreads; ++t) {
        const auto r = shift_grad_thread(g.data(), x.data(), shift.data(), p, b, t, kThreads);
        sum[0] += r.t; sum[1] += r.h; sum[2] += r.w;
      }
      for (int a = 0; a < 3; ++a) partial[b * 3 + a] = sum[a];
    }
    auto grad_shift = nan_filled<T>(3 * s.C);
    if (p.blocks() > 0)
      for (int64_t i = 0; i < 3 * s.C; ++i) shift_grad_finalize_one(partial.data(), grad_shift.data(), s.C, p.chunks, i);
    std::printf("chunks %lld\n", (long long)p.chunks);
    save(files[3], grad_shift);
  } else {
    return 2;
  }
  return 0;
}

int check_divmod() {
  std::vector<uint32_t> ds, ns;
  for (uint32_t d = 1; d < 3000; ++d) ds.push_back(d);
  for (int k = 1; k < 31; ++k) for (int e = -2; e <= 2; ++e) ds.push_back((1u << k) + e);
  ds.push_back(0x7fffffffu);
  for (uint32_t n = 0; n < 5000; ++n) ns.push_back(n);
  uint64_t r = 12345;
  for (int i = 0; i < 2000; ++i) { r = r * 6364136223846793005ull + 1442695040888963407ull; ns.push_back(uint32_t(r >> 33)); }
  for (int k = 1; k < 31; ++k) for (int e = -2; e <= 2; ++e) ns.push_back((1u << k) + e);
  ns.push_back(0x7fffffffu);
  long bad = 0;
  for (uint32_t d : ds) {
    if (d == 0 || d > 0x7fffffffu) continue;
    const FastDivmod f(d);
    for (uint32_t n : ns) {
      if (n > 0x7fffffffu) continue;
      uint32_t q, m; f.divmod(n, &q, &m);
      if (q != n / d || m != n % d) { if (bad++ < 5) std::fprintf(stderr, "%u / %u -> %u %u\n", n, d, q, m); }
    }
  }
  std::printf("divmod mismatches %ld\n", bad);
  return bad ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "divmod") return check_divmod();
  if (argc < 17) { std::fprintf(stderr, "bad usage\n"); return 2; }
  const std::string op = argv[1], dtype = argv[2];
  const bool quantize = std::atoi(argv[3]) != 0;
  Shape3d s;
  s.N = std::atoll(argv[4]); s.C = std::atoll(argv[5]);
  for (int a = 0; a < 3; ++a) {
    s.in[a] = std::atoll(argv[6 + a]);
    s.stride[a] = std::atoll(argv[9 + a]);
    s.pad[a] = std::atoll(argv[12 + a]);
  }
  char** files = argv + 15;
  if (dtype == "f32") return run<float>(op, s, quantize, files);
  if (dtype == "f64") return run<double>(op, s, quantize, files);
  if (dtype == "f16") return run<__half>(op, s, quantize, files);
  if (dtype == "bf16") return run<__nv_bfloat16>(op, s, quantize, files);
  return 2;
}

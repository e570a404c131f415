// Backend dispatch for ops (see ops.hpp).
#include "ops/ops.hpp"

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu.hpp"
#include "kernels/ref/ref.hpp"

namespace ssm::ops {
namespace {
Impl read_env() {
  const char* e = std::getenv("SSM_KERNELS");
  return (e && std::strcmp(e, "ref") == 0) ? Impl::Ref : Impl::Cpu;
}
Impl g_impl = read_env();
}  // namespace

Impl impl() { return g_impl; }
void set_impl(Impl i) { g_impl = i; }

void linear(const kernels::LinearParams& p) { g_impl == Impl::Ref ? kernels::ref::linear(p) : kernels::cpu::linear(p); }
void rms_norm(const kernels::RmsNormParams& p) {
  g_impl == Impl::Ref ? kernels::ref::rms_norm(p) : kernels::cpu::rms_norm(p);
}
void causal_conv1d(const kernels::ConvParams& p) {
  g_impl == Impl::Ref ? kernels::ref::causal_conv1d(p) : kernels::cpu::causal_conv1d(p);
}
void selective_scan(const kernels::ScanParams& p) {
  g_impl == Impl::Ref ? kernels::ref::selective_scan(p) : kernels::cpu::selective_scan(p);
}
void ssd_prefill(const kernels::SsdParams& p) {
  g_impl == Impl::Ref ? kernels::ref::ssd_recurrent(p) : kernels::cpu::ssd_chunked(p);
}
void ssd_step(const kernels::SsdParams& p) {
  g_impl == Impl::Ref ? kernels::ref::ssd_recurrent(p) : kernels::cpu::ssd_step(p);
}

}  // namespace ssm::ops

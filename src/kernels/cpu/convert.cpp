// CPU widening of bf16/f16/int8 weights to f32 (the panels that feed OpenBLAS sgemm in prefill),
// vectorised with Highway and split over the thread pool. Exact: every bf16/f16 value is an f32.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/convert.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void WidenRange(DType t, const void* src, float* dst, int64_t i0, int64_t i1) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  int64_t i = i0;
  if (t == DType::BF16) {
    const hn::Rebind<uint16_t, decltype(d)> d16;
    const hn::Rebind<uint32_t, decltype(d)> d32;
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (; i + L <= i1; i += L)
      hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, s + i)))), d, dst + i);
    for (; i < i1; i++) dst[i] = bf16_to_f32(s[i]);
  } else if (t == DType::F16) {
    const hn::Rebind<hwy::float16_t, decltype(d)> dh;
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (; i + L <= i1; i += L)
      hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(s + i))), d, dst + i);
    for (; i < i1; i++) dst[i] = f16_to_f32(s[i]);
  } else if (t == DType::I8) {
    const hn::Rebind<int8_t, decltype(d)> d8;
    const hn::Rebind<int32_t, decltype(d)> di;
    const int8_t* s = static_cast<const int8_t*>(src);
    for (; i + L <= i1; i += L) hn::StoreU(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, s + i))), d, dst + i);
    for (; i < i1; i++) dst[i] = float(s[i]);
  } else {
    const float* s = static_cast<const float*>(src);
    for (; i < i1; i++) dst[i] = s[i];
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(WidenRange);

void widen_to_f32(DType t, const void* src, float* dst, int64_t n) {
  init_isa_from_env();
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) { HWY_DYNAMIC_DISPATCH(WidenRange)(t, src, dst, i0, i1); });
}

}  // namespace ssm::kernels::cpu
#endif

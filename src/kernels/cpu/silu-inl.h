// Vector SiLU shared by the Highway kernels (conv1d, rms_norm). Per-target header: include it after
// <hwy/highway.h> inside HWY_BEFORE_NAMESPACE/ssm::kernels::cpu::HWY_NAMESPACE users' translation units.
#if defined(SSM_KERNELS_CPU_SILU_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SSM_KERNELS_CPU_SILU_INL_H_
#undef SSM_KERNELS_CPU_SILU_INL_H_
#else
#define SSM_KERNELS_CPU_SILU_INL_H_
#endif

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// silu(v) = v / (1 + exp(-v)); the exponent is clamped where exp would leave Highway's valid range
// (for v < -88 the result is -0 to f32 precision either way).
template <class D, class V>
HWY_INLINE V Silu(D d, V v) {
  const auto e = hn::Exp(d, hn::Min(hn::Neg(v), hn::Set(d, 88.f)));
  return hn::Div(v, hn::Add(hn::Set(d, 1.f), e));
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif

// ops: one entry point per op, dispatching to the backend chosen for the process. Callers fill the
// POD params of kernels/params.hpp; shapes were validated against the config at model load.
// SSM_KERNELS=ref (environment) routes every op to the scalar reference kernels, which lets a whole
// model be cross-checked against its own oracle.
#pragma once
#include "kernels/params.hpp"

namespace ssm::ops {

enum class Impl { Ref, Cpu };
Impl impl();              // from SSM_KERNELS, read once
void set_impl(Impl i);    // tests

void linear(const kernels::LinearParams& p);
void rms_norm(const kernels::RmsNormParams& p);
void causal_conv1d(const kernels::ConvParams& p);
void selective_scan(const kernels::ScanParams& p);
// Multi-token Mamba-2 prefill (chunked SSD on Cpu, the recurrence on Ref).
void ssd_prefill(const kernels::SsdParams& p);
// Single-token Mamba-2 recurrent update (p.L == 1).
void ssd_step(const kernels::SsdParams& p);

}  // namespace ssm::ops

// CPU kernels: the fast host versions of each op (BLAS GEMMs, chunked scans). Each has a scalar
// oracle in kernels/ref and a cross-check in tests/unit/test_kernels.cpp.
#pragma once
#include "kernels/params.hpp"

namespace ssm::kernels::cpu {

// GEMM through OpenBLAS; half-precision weights are widened to f32 panel by panel.
void linear(const LinearParams& p);
// Mamba-1 scan, channel-outer so each channel's N-state lives in registers for the whole sequence.
void selective_scan(const ScanParams& p);
// Mamba-2 SSD chunked algorithm (intra-chunk quadratic form + inter-chunk state passing), GEMMs in BLAS.
void ssd_chunked(const SsdParams& p);

}  // namespace ssm::kernels::cpu

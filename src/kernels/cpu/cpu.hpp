// CPU kernels: the fast host versions of each op (BLAS GEMMs, chunked scans). Each has a scalar
// oracle in kernels/ref and a cross-check in tests/unit/test_kernels.cpp.
#pragma once
#include <string>
#include <vector>

#include "kernels/params.hpp"
#include "ssm/error.hpp"

namespace ssm::kernels::cpu {

// Highway targets usable here, widest first ("avx3", "avx2", "sse4", "emu128", ...).
std::vector<std::string> available_isas();
// Restricts the SIMD kernels to one of available_isas() ("auto" = widest); throws ssm::Error otherwise.
void set_isa(const std::string& name);
std::string current_isa();
void init_isa_from_env();  // applies $SSM_ISA once
// Thread count of the pool, which is also oneDNN's (n <= 0: the default, see core/threadpool.hpp).
void set_threads(int n);
// Sets OpenBLAS's own thread count once (1: it runs only inside the pool's jobs); set_threads redoes it.
void init_blas_threads();

// y = x·Wᵀ + b: the GEMV for M <= kGemvMaxRows, else oneDNN's matmul (modes: SSM_CPU_GEMM, see linear.cpp).
void linear(const LinearParams& p);
// Matrix-vector products (any M, meant for M <= kGemvMaxRows): conversion fused, rows threaded.
inline constexpr int64_t kGemvMaxRows = 8;
void gemv(const LinearParams& p);
// x (K, a multiple of 32) rounded to int16 per block of 32, as the q8 GEMV does (bit-identical to
// ref::quantize_x16).
void quantize_x16(const float* x, int64_t K, int16_t* xq, float* xs);
// n weights of type t widened to f32 (I8: raw values, no scales); vectorised and threaded.
void widen_to_f32(DType t, const void* src, float* dst, int64_t n);
// Mamba-1 scan, channel-outer so each channel's N-state lives in registers for the whole sequence.
void selective_scan(const ScanParams& p);
// Mamba-2 SSD chunked algorithm (intra-chunk quadratic form + inter-chunk state passing), GEMMs in BLAS.
void ssd_chunked(const SsdParams& p);
// Mamba-2 recurrent update (decode), heads threaded, vectorised over N.
void ssd_step(const SsdParams& p);
// Depthwise causal conv1d + bias + SiLU, vectorised over channels (K <= 8).
void causal_conv1d(const ConvParams& p);
// RMSNorm (grouped, optionally gated), rows threaded, vectorised.
void rms_norm(const RmsNormParams& p);

}  // namespace ssm::kernels::cpu

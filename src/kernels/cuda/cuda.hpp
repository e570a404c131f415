// CUDA kernels: host entry points, one group per .cu file. Every pointer is a device pointer; shapes
// and strides follow kernels/params.hpp (the per-sequence prefill kernels take those POD structs
// unchanged), and the batched decode kernels address each sequence's state through a device array of
// slot indices: state of sequence b = states + slots[b] * slot_stride + (layer offset baked into the
// pointer). All launches go to `stream` and are CUDA-graph capturable.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/params.hpp"

namespace ssm::kernels::cuda {

// Throws ssm::Error "`what`: <CUDA error string>" unless e == cudaSuccess.
void check(cudaError_t e, const char* what);

// Causal conv decode step (conv1d.cu): one token for B sequences, x (B, C) with stride, window of b at
// states + slots[b]*slot_stride (K-1, C). Decode kernels address states in elements: f32, or bf16 when
// state_bf16 (every load widens, every store rounds to nearest even; the math is f32).
struct ConvStepParams {
  int64_t B, C, K;
  const float* x; int64_t x_stride;
  const float* w; const float* bias;
  void* states; int64_t slot_stride; const int32_t* slots;
  bool silu;
  float* y; int64_t y_stride;
  bool state_bf16 = false;
  // When set, y is also written here in y_half_dtype (bf16/f16), row stride y_half_stride: the input
  // of the next GEMM, so no conversion kernel runs between them.
  void* y_half = nullptr; DType y_half_dtype = DType::BF16; int64_t y_half_stride = 0;
};

// ---- gemm.cu: y (M, N) = [norm](x) (M, K) · W(N, K)ᵀ (+ bias) (+ y if accumulate) --------------------
struct LinearArgs {
  int64_t M, N, K;
  const float* x; int64_t x_stride;
  const void* w; DType w_dtype;
  const float* bias;     // (N) nullable
  float* y; int64_t y_stride;
  const float* norm_w;   // (K) nullable: x is RMS-normalised on the fly with this weight (block pre-norm)
  float eps;
  bool accumulate;       // y += result (residual add)
  // GEMV path only (M <= 8): x ← x·silu(gate) before the norm, which then runs over groups of
  // norm_group columns (0: all K) — Mamba-2's gated RMSNorm (norm_before_gate=False) fused into out_proj.
  const float* gate = nullptr; int64_t gate_stride = 0;
  int64_t norm_group = 0;
  // cuBLASLt path only (M > 8, bf16/f16 weights, no norm_w): x already in the weight dtype, row stride
  // x_stride (used instead of x; the conversion kernel is skipped).
  const void* x_half = nullptr;
  // (No more fields: the GEMV kernels take this by value, and batch-1 decode measured 2% slower on
  // the H200 with one more pointer here; see Blas::linear's y_half instead.)
};

// Row-major strided-batched product on the tensor cores: for each b < batch,
//   C_b (M, N) = op(A_b) (M, K) · op(B_b) (K, N) + beta · C_b,   X_b = X + b · stride_x,
// A and B bf16, C f32, f32 accumulation. op(A) is A stored (M, K) with row stride lda, or (K, M)
// when trans_a; op(B) is B stored (K, N) with row stride ldb, or (N, K) when trans_b.
struct BatchedGemm {
  int64_t M, N, K, batch;
  const void* A; int64_t lda, stride_a; bool trans_a;
  const void* B; int64_t ldb, stride_b; bool trans_b;
  float* C; int64_t ldc, stride_c;
  float beta = 0.f;
};

// Owns the cuBLASLt handle, its workspace and the scratch that holds activations converted to the
// weight dtype. M <= kGemvMaxM takes the bandwidth-bound GEMV kernel, larger M takes cuBLASLt.
class Blas {
 public:
  static constexpr int64_t kGemvMaxM = 8;
  // Scratch is sized for M <= max_m rows of K <= max_k (both grow only outside graph capture).
  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  void reserve(int64_t max_m, int64_t max_k);
  // With y_half (cuBLASLt path only: M > 8, bf16/f16 weights, no bias, no accumulate) the product is
  // written there in the weight dtype, row stride a.y_stride, instead of to a.y (which may be null).
  void linear(const LinearArgs& a, cudaStream_t stream, void* y_half = nullptr);
  void gemm_batched(const BatchedGemm& g, cudaStream_t stream);
  size_t device_bytes() const { return ws_bytes_ + xbuf_bytes_; }

 private:
  struct Plan;  // a cached cuBLASLt descriptor set + chosen algorithm (gemm.cu)
  static void destroy(Plan* p);
  // A cuBLASLt preference: this workspace, and the operands' alignments (0: not stated).
  void* preference(uint32_t align_a, uint32_t align_b, uint32_t align_c) const;
  Plan& plan(int64_t M, int64_t N, int64_t K, DType t, int64_t ldb, int64_t ldc, uint32_t align_b, uint32_t align_c,
             bool out_half);
  void tune(Plan& p, const void* w, const void* xb, size_t out_bytes, cudaStream_t s);
  void* handle_ = nullptr;
  void* ws_ = nullptr;
  size_t ws_bytes_ = 0;
  void* xbuf_ = nullptr;
  size_t xbuf_bytes_ = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t, int, int64_t, int64_t, int64_t, bool>, Plan*> plans_;
  std::map<std::vector<int64_t>, Plan*> batched_plans_;
};

// x of the shared-memory GEMV (M·K·4 bytes) must fit in this; larger inputs take a slower GEMV and
// cannot be gated.
inline constexpr size_t kGemvMaxSmem = 96 * 1024;
// The GEMV path on its own (M <= 8), for tests and benchmarks; `unroll` 4, 8 or 16 forces the 16-byte
// loads in flight per lane (0: chosen per shape).
void gemv(const LinearArgs& a, cudaStream_t stream, int unroll = 0);
// Whether M rows of K take the shared-memory GEMV (needed for gated inputs).
bool gemv_smem_fits(int64_t M, int64_t K);

// ---- norm.cu ----------------------------------------------------------------------------------------
// h (T, D) f32 = table[ids[t]] widened from `dtype`.
void embed(const int32_t* ids, int64_t T, const void* table, DType dtype, int64_t D, float* h, cudaStream_t stream);
// RmsNormParams on the device (grouped, gated, weightless); in place allowed. `gate_only` skips the
// norm: y = x·silu(gate) (Mamba-2 with rmsnorm=False).
void rms_norm(const RmsNormParams& p, cudaStream_t stream, bool gate_only = false);
// The same with y written to `y` in bf16/f16 (row stride p.y_stride; p.y unused).
void rms_norm_half(const RmsNormParams& p, void* y, DType t, cudaStream_t stream, bool gate_only = false);
// y (M, K) in bf16/f16 = x (M, K) f32, optionally RMS-normalised with weight norm_w (then eps applies).
void to_half(const float* x, int64_t M, int64_t K, int64_t x_stride, const float* norm_w, float eps, void* y, DType t,
             cudaStream_t stream);
// dst[i] = src[i] for n elements, each side f32 or bf16 (round to nearest even).
void convert_state(const void* src, bool src_bf16, void* dst, bool dst_bf16, int64_t n, cudaStream_t stream);
// y (M, N) += bias (N).
void add_bias(float* y, int64_t M, int64_t N, int64_t y_stride, const float* bias, cudaStream_t stream);

// ---- conv1d.cu --------------------------------------------------------------------------------------
// Prefill of one sequence: ConvParams with device pointers (state advanced). With y_half, y is also
// (p.y null: only) written there in bf16 (f16 when t is F16), same row stride: the next GEMM's input.
// With x_half, x is read from there in t, row stride p.x_stride (p.x unused).
void causal_conv1d(const ConvParams& p, cudaStream_t stream, void* y_half = nullptr, DType t = DType::BF16,
                   const void* x_half = nullptr);
void causal_conv1d_step(const ConvStepParams& p, cudaStream_t stream);
// Mamba-1 decode, conv step fused with x_proj: xc = silu(conv step) as above, then dbc (B, RN) += xc · Wxᵀ
// for Wx (RN, C), split over channel slices that add their partial sums atomically, so dbc must be
// zero on entry (summation order, hence the last bits, may differ between runs). `zero` (nullable,
// zero_n floats) is cleared by the kernel for the next layer's call. B <= kConvXprojMaxB, C % 8 == 0.
inline constexpr int64_t kConvXprojMaxB = 8;
struct ConvXprojParams {
  ConvStepParams conv;
  const void* xw; DType xw_dtype; int64_t RN;
  float* dbc; int64_t dbc_stride;
  float* zero; int64_t zero_n;
};
void conv_xproj_step(const ConvXprojParams& p, cudaStream_t stream);

// ---- scan.cu: Mamba-1 ----------------------------------------------------------------------------------
// Prefill of one sequence (ScanParams with device pointers; dt softplus, D skip and z gate fused).
// With `chunks` 0 (automatic) the single-pass warp-scan kernel below serves every shape it takes.
// Otherwise, with a workspace (selective_scan_workspace_floats, for the longest L it will be given),
// a long sequence is split into time chunks that run in parallel: chunk end states from zero, a
// carry over chunks, then the outputs (about twice the recurrence work, for up to kScanMaxChunks
// times the parallelism). `chunks` 0 picks the count there (selective_scan_chunks;
// SSM_CUDA_SCAN_CHUNKS=n forces it), 1 is the sequential scan.
constexpr int64_t kScanMaxChunks = 64;
int64_t selective_scan_workspace_floats(int64_t L, int64_t E, int64_t N);
int64_t selective_scan_chunks(int64_t L, int64_t E, int64_t N);
void selective_scan(const ScanParams& p, cudaStream_t stream, float* work = nullptr, int64_t chunks = 0);
// Single-pass prefill scan (one warp per channel, a warp scan of per-lane affine maps; scan.cu): each
// exp(ΔA) once, no carry pass. Serves d_state 4, 8, 12 or 16, channels a multiple of 8 and 16-byte
// aligned operands and strides (selective_scan_warp_ok); selective_scan takes it when the chunk count
// is automatic, unless SSM_CUDA_SCAN=chunked (selective_scan_warp_enabled). With y_half (bf16, or f16
// when t is F16; row stride y_half_stride) the outputs are written there instead of p.y: the next
// GEMM's input, so no conversion kernel runs between them. With u_half (needs y_half) u and z are read
// in that dtype from u_half and z_half (null: no gate), strides p.u_stride and p.z_stride, instead
// of p.u and p.z: the conv's and in_proj's outputs kept in the weight dtype.
bool selective_scan_warp_ok(const ScanParams& p, const void* y_half = nullptr, int64_t y_half_stride = 0,
                            const void* u_half = nullptr, const void* z_half = nullptr);
bool selective_scan_warp_enabled();
void selective_scan_warp(const ScanParams& p, cudaStream_t stream, void* y_half = nullptr, DType t = DType::BF16,
                         int64_t y_half_stride = 0, const void* u_half = nullptr, const void* z_half = nullptr);
// One token for B sequences, fused: [weightless RMSNorm of δ, B, C] → Δ = softplus(dt_proj·δ + dt_bias)
// → h = exp(ΔA)h + ΔBu → y = (C·h + D·u)·silu(z).
struct Mamba1StepParams {
  int64_t B, E, N, R;
  const float* u; int64_t u_stride;      // (B, E) conv output
  const float* dbc; int64_t dbc_stride;  // (B, R+2N): δ | B | C
  const void* dt_w; DType dt_w_dtype;    // (E, R)
  const float* dt_bias;                  // (E)
  const float* A;                        // (E, N)
  const float* D;                        // (E) nullable
  const float* z; int64_t z_stride;      // (B, E)
  bool bcdt_rms; float rms_eps;
  void* states; int64_t slot_stride; const int32_t* slots;  // h of b at states + slots[b]*slot_stride (E, N)
  float* y; int64_t y_stride;
  bool state_bf16 = false;
  // When set, δ·dt_proj was computed already (B, E): Δ = softplus(delta + dt_bias), dt_w unused.
  const float* delta = nullptr; int64_t delta_stride = 0;
  // When set, y is written here in y_half_dtype (bf16/f16: the next GEMM's input) instead of to `y`
  // (rows kernel only: batches > 8, no precomputed delta).
  void* y_half = nullptr; DType y_half_dtype = DType::BF16;
};
// Picks the kernel: batches <= 8 the fused lane-group kernel; larger batches with d_state <= 16 the
// rows kernel (thread per channel and sequence, dt_proj and the B/C/δ norms inside); a precomputed
// delta takes the batched lane-group kernel (any d_state <= 128).
void mamba1_step(const Mamba1StepParams& p, cudaStream_t stream);
// Whether the rows kernel serves this shape (otherwise batches > 8 need dt_proj precomputed);
// SSM_CUDA_M1_STEP=gemm turns it off (measurement switch: the previous GEMM + batched kernel path).
bool mamba1_step_rows_ok(int64_t N, int64_t R);
// The rows kernel at any batch (tests).
void mamba1_step_rows(const Mamba1StepParams& p, cudaStream_t stream);

// ---- decode_layer.cu: a whole Mamba-1 layer of batch-1 decode in one kernel ---------------------------
// h += out_proj(gate(step(x_proj(conv(in_proj(RMSNorm(h))))))) for one sequence, in one persistent
// kernel (one block per SM, grid-wide barriers between the phases; decode_layer.cu). Same math as
// causal_conv1d_step + GEMVs + mamba1_step; sums in a fixed order (bit-reproducible).
struct Mamba1LayerParams {
  int64_t D, E, N, R, K;
  float* h;                                  // (D) residual stream, updated in place
  const float* norm_w; float eps;            // block RMSNorm
  const void* in_w; const float* in_b;       // (2E, D), bias (2E) nullable
  const float* conv_w; const float* conv_b;  // (E, K), (E) nullable
  const void* x_w;                           // (R + 2N, E)
  const void* dt_w; const float* dt_bias;    // (E, R), (E)
  const float* A; const float* Dskip;        // (E, N), (E) nullable
  bool bcdt_rms; float rms_eps;              // FalconMamba's weightless norms of δ, B, C
  const void* out_w; const float* out_b;     // (D, E), (D) nullable
  DType wt;                                  // dtype of the four matrices
  void* states; int64_t slot_stride; const int32_t* slots;  // the sequence's slot: states + slots[0]·slot_stride
  int64_t conv_off, ssm_off;                 // element offsets of this layer's window (K-1, E) and state (E, N)
  bool state_bf16;
  float* xc; float* z; float* y;             // scratch (E) each
  float* part;                               // scratch: mamba1_layer_part_floats(E, N, R)
  unsigned* bar;                             // 1 word, zero at each launch: the grid barriers count into it
  // Measurement only: when set, thread 0 of block b writes the GPU clock (ns) at the end of each
  // phase to prof[b·8 + k]: 0 after the wait, 1 x staged, 2 in_proj + conv, 3 barrier, 4 x_proj +
  // barrier, 5 step + barrier, 6 y staged and weights landed, 7 out_proj.
  unsigned long long* prof = nullptr;
};
// Empty when the fused kernel serves this shape on this GPU, else the reason (the caller then runs
// the separate kernels).
std::string mamba1_layer_unsupported(const Mamba1LayerParams& p);
int64_t mamba1_layer_part_floats(int64_t E, int64_t N, int64_t R);
void mamba1_layer_step(const Mamba1LayerParams& p, cudaStream_t stream);

// ---- ssd.cu: Mamba-2 ------------------------------------------------------------------------------------
// Chunked SSD prefill of one sequence. `work` needs ssd_workspace_floats(…, math) floats. The chunk
// products run in f32 on the CUDA cores, on TF32 tensor-core tiles (f32 accumulation and states), or
// as cuBLASLt strided-batched bf16 GEMMs (BF16: operands rounded to bf16, f32 accumulation, the
// running state f32; needs `blas`). ssd_math(half_weights): BF16 for bf16/f16 checkpoints, F32 for
// f32 ones; SSM_CUDA_SSD=f32|tf32|bf16 overrides. BF16 falls back to F32 for shapes ssd_bf16_ok rejects.
enum class SsdMath { F32, TF32, BF16 };
// The chunk length the GPU prefill uses. The chunked algorithm is exact for any chunk length (the
// checkpoint's chunk_size only sets the reference implementations' blocking), and these kernels'
// cost is dominated by the intra-chunk product, O(L·Q), so the GPU uses 128-step chunks by default
// (SSM_CUDA_SSD_CHUNK=n overrides; docs/benchmarks.md has the measurement).
int64_t ssd_chunk_for(int64_t config_chunk);
SsdMath ssd_math(bool half_weights);
bool ssd_bf16_ok(int64_t P, int64_t N, int64_t chunk);
int64_t ssd_workspace_floats(int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk, SsdMath math);
// Mamba-2's gated RMSNorm (norm.cu's rms_norm semantics, gate z) applied by the BF16 path's output
// kernel, which then writes y_half (bf16/f16, out_proj's input) instead of p.y. Only where
// ssd_norm_fuses says so; otherwise the caller runs the norm after ssd_prefill.
struct SsdGatedNorm {
  const float* z; int64_t z_stride;
  const float* w;            // (H·P) nullable
  int64_t group;             // columns per norm group
  bool norm_before_gate, gate_only;
  float eps;
  void* y_half; DType y_dtype; int64_t y_half_stride;
  // When in_proj wrote its outputs in the weight dtype (half_in bf16/f16): z is read from z_half
  // (stride z_stride; z unused) and dt from dt_half (stride p.dt_stride; p.dt unused).
  DType half_in = DType::F32;
  const void* z_half = nullptr;
  const void* dt_half = nullptr;
};
bool ssd_norm_fuses(const SsdParams& p, SsdMath math, const SsdGatedNorm& norm);
void ssd_prefill(const SsdParams& p, float* work, cudaStream_t stream, SsdMath math = SsdMath::F32, Blas* blas = nullptr,
                 const SsdGatedNorm* norm = nullptr);
struct SsdStepParams {
  int64_t B, H, P, G, N;
  const float* x; int64_t x_stride;    // (B, H·P)
  const float* dt; int64_t dt_stride;  // (B, H)
  const float* dt_bias; const float* A; const float* D;
  const float* Bm; int64_t B_stride;   // (B, G·N)
  const float* Cm; int64_t C_stride;   // (B, G·N)
  float dt_min, dt_max;
  void* states; int64_t slot_stride; const int32_t* slots;  // S of b at states + slots[b]*slot_stride (H, P, N)
  float* y; int64_t y_stride;
  bool state_bf16 = false;
};
void ssd_step(const SsdStepParams& p, cudaStream_t stream);

// ---- sample.cu ----------------------------------------------------------------------------------------
// One token per row of logits (B, V) following the rule of models/sample.hpp. `logits` is overwritten.
void sample(float* logits, int64_t B, int64_t V, float temperature, int top_k, float top_p, uint64_t seed,
            uint64_t step, int32_t* out, cudaStream_t stream);

}  // namespace ssm::kernels::cuda

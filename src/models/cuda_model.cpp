// The LM on one CUDA GPU: same architecture as models/model.cpp, with weights (bf16 by default),
// per-sequence states and scratch on the device. States live in a pool of device slots
// (State::slot_handle returns its slot on release); decode of B sequences runs as one CUDA graph per
// batch bucket (1, 2, 4, ... max_batch) whose token ids and slot indices are device arrays refreshed
// by one memcpy before each launch, so sequences join and leave without re-capture. Prefill runs one
// sequence at a time in blocks of at most max_block_tokens rows.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "kernels/cuda/cuda.hpp"
#include "loader/weights.hpp"
#include "models/lm.hpp"

namespace ssm {
namespace {
namespace kc = kernels::cuda;
using kc::check;

std::string mib(size_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; }

// Every device allocation of the model, freed together; OOM is an Error naming size and remedy.
class DeviceArena {
 public:
  ~DeviceArena() {
    for (auto& [p, n] : ptrs_) cudaFree(p);
  }
  void* alloc(size_t bytes, const std::string& what) {
    void* p = nullptr;
    if (bytes == 0) bytes = 16;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      throw Error("GPU out of memory: cudaMalloc of " + mib(bytes) + " for " + what + " failed (" + mib(fr) + " free of " +
                  mib(tot) + "; the model already holds " + mib(total_) +
                  "). Reduce max_batch or max_block_tokens, or load the weights as bf16");
    }
    ptrs_[p] = bytes;
    total_ += bytes;
    return p;
  }
  void free(void* p) {
    auto it = ptrs_.find(p);
    if (it == ptrs_.end()) return;
    cudaFree(p);
    total_ -= it->second;
    ptrs_.erase(it);
  }
  size_t total() const { return total_; }

 private:
  std::map<void*, size_t> ptrs_;
  size_t total_ = 0;
};

struct DMat {
  const void* w = nullptr;
  DType t = DType::BF16;
  int64_t N = 0, K = 0;
  const float* b = nullptr;
};

struct DLayer {
  const float* norm_w = nullptr;
  DMat in_proj, x_proj, dt_proj, out_proj;
  const float *conv_w = nullptr, *conv_b = nullptr, *dt_bias = nullptr, *A = nullptr, *D = nullptr, *gnorm_w = nullptr;
  int64_t state_off = 0;
};

// Activation scratch for blocks of up to T rows.
struct Bufs {
  int64_t T = 0;
  float *h, *proj, *xc, *dbc, *dbc2, *delta, *y, *scan_ws, *logits;  // scan_ws: SSD or chunked-scan workspace
  // Decode only (batches > 8): GEMM inputs written in the weight dtype by their producers (conv step,
  // Mamba-1 step, gated norm), (T, d_inner) 16-bit elements each; null in prefill buffers.
  void *xh = nullptr, *yh = nullptr;
  int32_t *ids, *slots, *next;
  int64_t logit_rows = 0;
  // Decode of Mamba-1 only: the fused layer kernel's x_proj partial sums and grid barrier.
  float* part = nullptr;
  unsigned* bar = nullptr;
};

struct SlotPool {
  std::mutex mu;
  std::vector<int64_t> free;
};
// Returns its slot to the pool when destroyed, so it must never be copied (a copied temporary would
// release the slot while a State still uses it).
struct SlotToken {
  std::weak_ptr<SlotPool> pool;
  const void* owner;
  int64_t slot;
  SlotToken(std::weak_ptr<SlotPool> p, const void* o, int64_t s) : pool(std::move(p)), owner(o), slot(s) {}
  SlotToken(const SlotToken&) = delete;
  SlotToken& operator=(const SlotToken&) = delete;
  ~SlotToken() {
    if (auto p = pool.lock()) {
      std::lock_guard<std::mutex> g(p->mu);
      p->free.push_back(slot);
    }
  }
};

class CudaLM final : public Model {
 public:
  CudaLM(ModelConfig cfg, Checkpoint ck, const std::string& what, const LoadOptions& opt) : c_(std::move(cfg)), ck_(std::move(ck)) {
    if (opt.state_dtype != "f32" && opt.state_dtype != "bf16")
      throw Error("state_dtype '" + opt.state_dtype + "' is not one of f32, bf16");
    sbf_ = opt.state_dtype == "bf16";
    if (opt.max_batch < 1 || opt.max_batch > 4096) throw Error("max_batch must be in [1, 4096], got " + std::to_string(opt.max_batch));
    wt_ = opt.dtype == "auto" || opt.dtype == "bf16" ? DType::BF16 : opt.dtype == "f16" ? DType::F16 : opt.dtype == "f32" ? DType::F32
        : throw Error("dtype '" + opt.dtype + "' is not one of auto, bf16, f16, f32");
    max_batch_ = opt.max_batch;
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cudaDeviceProp prop{};
    int dev = 0;
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    device_name_ = prop.name;
    load_weights(what);
    max_bucket_ = 1;
    while (max_bucket_ < max_batch_) max_bucket_ *= 2;
    dec_ = make_bufs(max_bucket_, "decode scratch", true);
    blas_.reserve(std::max(max_block_tokens, max_bucket_), std::max({c_.d_model, c_.d_inner, proj_width()}));
    blas_rows_ = std::max(max_block_tokens, max_bucket_);
    check(cudaMallocHost(reinterpret_cast<void**>(&host_io_), size_t(max_bucket_) * 2 * sizeof(int32_t)), "cudaMallocHost");
    grow_pool(std::min<int64_t>(max_batch_, 4));
  }

  ~CudaLM() override {
    reset_graphs();
    if (host_io_) cudaFreeHost(host_io_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const ModelConfig& config() const override { return c_; }

  ModelInfo info() const override {
    ModelInfo mi;
    count_params(c_, ck_, mi);
    mi.state_bytes = sf_ * int64_t(se());
    mi.state_dtype = sbf_ ? "bf16" : "f32";
    mi.device = device_name_;
    mi.device_bytes = int64_t(arena_.total() + blas_.device_bytes());
    return mi;
  }

  State new_state() const override {
    auto* self = const_cast<CudaLM*>(this);
    int64_t slot;
    {
      std::unique_lock<std::mutex> g(pool_->mu);
      if (pool_->free.empty()) {
        if (capacity_ >= max_batch_)
          throw Error("all " + std::to_string(max_batch_) + " GPU state slots are in use; release States or load with a larger max_batch");
        g.unlock();
        self->grow_pool(std::min(max_batch_, capacity_ * 2));
        g.lock();
      }
      slot = pool_->free.back();
      pool_->free.pop_back();
    }
    check(cudaMemsetAsync(slot_ptr(slot), 0, size_t(sf_) * se(), stream_), "cudaMemset state");
    State s;
    s.slot = slot;
    s.slot_handle = std::make_shared<SlotToken>(pool_, this, slot);
    return s;
  }

  void copy_state(const State& from, State& to) override {
    check_state(from, "copy_state");
    if (!owns(to)) to = new_state();
    check(cudaMemcpyAsync(slot_ptr(to.slot), slot_ptr(from.slot), size_t(sf_) * se(), cudaMemcpyDeviceToDevice, stream_), "copy_state");
    to.pos = from.pos;
  }
  void state_to_host(const State& s, float* host) override {
    check_state(s, "state_to_host");
    // Host states are f32 in either storage (a bf16 state widens exactly).
    const void* src = slot_ptr(s.slot);
    if (sbf_) {
      kc::convert_state(src, true, f32_state(), false, sf_, stream_);
      src = f32_state();
    }
    check(cudaMemcpyAsync(host, src, size_t(sf_) * 4, cudaMemcpyDeviceToHost, stream_), "state_to_host");
    check(cudaStreamSynchronize(stream_), "state_to_host");
  }
  void state_from_host(const float* host, State& s) override {
    if (!owns(s)) s = new_state();
    check(cudaMemcpyAsync(sbf_ ? f32_state() : slot_ptr(s.slot), host, size_t(sf_) * 4, cudaMemcpyHostToDevice, stream_), "state_from_host");
    if (sbf_) kc::convert_state(f32_state(), false, slot_ptr(s.slot), true, sf_, stream_);
    check(cudaStreamSynchronize(stream_), "state_from_host");
  }

  void forward(std::vector<SeqRequest>& reqs) override {
    std::vector<size_t> dec;
    for (size_t r = 0; r < reqs.size(); r++) {
      const SeqRequest& q = reqs[r];
      if (q.n < 0) throw Error("forward: request " + std::to_string(r) + " has a negative token count");
      if (q.n > 0 && (!q.state || !owns(*q.state)))
        throw Error("forward: request " + std::to_string(r) + " has no state or a state of another model (GPU states come from this model's new_state)");
      for (int64_t i = 0; i < q.n; i++)
        if (q.tokens[i] < 0 || q.tokens[i] >= c_.vocab)
          throw Error("token id " + std::to_string(q.tokens[i]) + " at position " + std::to_string(i) + " of sequence " +
                      std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(c_.vocab) + ")");
    }
    for (size_t r = 0; r < reqs.size(); r++) {
      if (reqs[r].n == 1) dec.push_back(r);
      else if (reqs[r].n > 1) prefill_one(reqs[r]);
    }
    for (size_t i = 0; i < dec.size(); i += size_t(max_bucket_)) {
      const size_t e = std::min(dec.size(), i + size_t(max_bucket_));
      std::vector<size_t> part(dec.begin() + long(i), dec.begin() + long(e));
      decode(reqs, part);
      for (size_t j = 0; j < part.size(); j++)
        if (reqs[part[j]].logits)
          check(cudaMemcpyAsync(reqs[part[j]].logits, dec_.logits + int64_t(j) * c_.vocab, size_t(c_.vocab) * 4,
                                cudaMemcpyDeviceToHost, stream_), "logits");
      for (size_t r : part) reqs[r].state->pos += 1;
    }
    check(cudaStreamSynchronize(stream_), "forward");
  }

  void step_sample(const int32_t* tokens, int64_t B, State* const* states, const SampleParams& sp, uint64_t step_no,
                   int32_t* next) override {
    std::vector<SeqRequest> reqs(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; b++) {
      if (!states[b] || !owns(*states[b])) throw Error("step_sample: sequence " + std::to_string(b) + " has no state of this model");
      if (tokens[b] < 0 || tokens[b] >= c_.vocab) throw Error("step_sample: token id " + std::to_string(tokens[b]) + " is outside the vocabulary");
      reqs[size_t(b)] = {tokens + b, 1, states[b], nullptr, false};
    }
    for (int64_t i = 0; i < B; i += max_bucket_) {
      std::vector<size_t> part;
      for (int64_t b = i; b < std::min(B, i + max_bucket_); b++) part.push_back(size_t(b));
      decode(reqs, part);
      kc::sample(dec_.logits, int64_t(part.size()), c_.vocab, sp.temperature, sp.top_k, sp.top_p, sp.seed, step_no,
                 dec_.next, stream_);
      check(cudaMemcpyAsync(next + i, dec_.next, part.size() * 4, cudaMemcpyDeviceToHost, stream_), "sample");
      for (size_t r : part) reqs[r].state->pos += 1;
    }
    check(cudaStreamSynchronize(stream_), "step_sample");
  }

 private:
  int64_t proj_width() const {
    return c_.arch == Arch::Mamba1 ? 2 * c_.d_inner : c_.d_inner + c_.conv_channels() + c_.n_heads;
  }
  size_t se() const { return sbf_ ? 2 : 4; }  // bytes per state element
  void* slot_ptr(int64_t slot, int64_t elem = 0) const { return states_ + (slot * sf_ + elem) * int64_t(se()); }
  float* f32_state() {
    if (!f32_scratch_) f32_scratch_ = static_cast<float*>(arena_.alloc(size_t(sf_) * 4, "f32 state scratch (bf16 states)"));
    return f32_scratch_;
  }
  bool owns(const State& s) const {
    auto* t = static_cast<const SlotToken*>(s.slot_handle.get());
    return t && t->owner == this && s.slot >= 0 && s.slot < capacity_;
  }
  void check_state(const State& s, const char* op) const {
    if (!owns(s)) throw Error(std::string(op) + ": the state belongs to another model or backend");
  }

  // ---- loading ----
  DMat matrix(const Weights& W, const std::string& name, int64_t N, int64_t K, const std::string& why, bool bias = false) {
    Tensor t = W.matrix(name + ".weight", {N, K}, why);
    DMat m{nullptr, wt_, N, K, nullptr};
    Tensor h = t.dtype() == wt_ ? t : Tensor::from_f32(t.to_f32().f32(), wt_, {N, K});
    void* d = arena_.alloc(h.nbytes(), name);
    check(cudaMemcpy(d, h.raw(), h.nbytes(), cudaMemcpyHostToDevice), "upload weights");
    m.w = d;
    if (bias) m.b = vec(W, name + ".bias", {N}, why);
    return m;
  }
  const float* vec(const Weights& W, const std::string& name, const Shape& s, const std::string& why) {
    return upload(W.vec(name, s, why), name);
  }
  const float* upload(const std::vector<float>& v, const std::string& name) {
    void* d = arena_.alloc(v.size() * 4, name);
    check(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice), "upload weights");
    return static_cast<const float*>(d);
  }

  void load_weights(const std::string& dir) {
    Weights W(ck_, dir);
    const bool ssm_layout = c_.layout == "mamba_ssm";
    const int64_t D = c_.d_model, E = c_.d_inner, N = c_.d_state, K = c_.d_conv, CC = c_.conv_channels();
    const std::string vwhy = "vocab_size=" + std::to_string(c_.vocab_config) + ", hidden_size=" + std::to_string(D);
    embed_ = matrix(W, ssm_layout ? "backbone.embedding" : "backbone.embeddings", c_.vocab, D, vwhy);
    if (W.has("lm_head.weight")) lm_head_ = matrix(W, "lm_head", c_.vocab, D, vwhy);
    else if (c_.tie_embeddings) lm_head_ = embed_;
    else throw Error(dir + ": missing tensor 'lm_head.weight' and config.json says the embeddings are not tied");
    norm_f_ = vec(W, "backbone.norm_f.weight", {D}, vwhy);
    const std::string why = "hidden_size=" + std::to_string(D) + ", inner=" + std::to_string(E) + ", state_size=" + std::to_string(N);
    int64_t off = 0;
    for (int64_t i = 0; i < c_.n_layer; i++) {
      const std::string p = "backbone.layers." + std::to_string(i), m = p + ".mixer";
      DLayer l;
      l.norm_w = vec(W, p + ".norm.weight", {D}, why);
      l.conv_w = vec(W, m + ".conv1d.weight", {CC, 1, K}, why);
      if (c_.conv_bias) l.conv_b = vec(W, m + ".conv1d.bias", {CC}, why);
      l.D = vec(W, m + ".D", {c_.arch == Arch::Mamba1 ? E : c_.n_heads}, why);
      l.out_proj = matrix(W, m + ".out_proj", D, E, why, c_.proj_bias);
      l.in_proj = matrix(W, m + ".in_proj", proj_width(), D, why, c_.proj_bias);
      std::vector<float> a;
      if (c_.arch == Arch::Mamba1) {
        l.x_proj = matrix(W, m + ".x_proj", c_.dt_rank + 2 * N, E, why);
        l.dt_proj = matrix(W, m + ".dt_proj", E, c_.dt_rank, why);
        l.dt_bias = vec(W, m + ".dt_proj.bias", {E}, why);
        a = W.vec(m + ".A_log", {E, N}, why);
      } else {
        l.dt_bias = vec(W, m + ".dt_bias", {c_.n_heads}, why);
        a = W.vec(m + ".A_log", {c_.n_heads}, why);
        if (c_.gated_norm) l.gnorm_w = vec(W, m + ".norm.weight", {E}, why);
      }
      for (float& v : a) v = -std::exp(v);  // A = -exp(A_log), once
      l.A = upload(a, m + ".A_log");
      l.state_off = off;
      off += c_.state_floats_per_layer();
      layers_.push_back(l);
    }
    sf_ = off;
  }

  // ---- buffers, slots, graphs ----
  Bufs make_bufs(int64_t T, const std::string& what, bool decode = false) {
    const int64_t D = c_.d_model, E = c_.d_inner, CC = c_.conv_channels(), RN = c_.dt_rank + 2 * c_.d_state;
    Bufs b;
    b.T = T;
    b.logit_rows = std::min<int64_t>(T, 256);
    auto f = [&](int64_t n) { return static_cast<float*>(arena_.alloc(size_t(n) * 4, what)); };
    b.h = f(T * D);
    b.proj = f(T * proj_width());
    b.xc = f(T * CC);
    b.dbc = f(T * std::max<int64_t>(RN, 1));
    b.dbc2 = f(T * std::max<int64_t>(RN, 1));
    b.delta = f(c_.arch == Arch::Mamba1 ? T * E : 1);
    b.y = f(T * E);
    b.scan_ws = f(c_.arch == Arch::Mamba2
                      ? kc::ssd_workspace_floats(T, c_.n_heads, c_.head_dim, c_.n_groups, c_.d_state, kc::ssd_chunk_for(c_.chunk_size),
                                                  kc::ssd_math(wt_ != DType::F32))
                      : kc::selective_scan_workspace_floats(T, E, c_.d_state));
    b.logits = f(b.logit_rows * c_.vocab);
    b.ids = static_cast<int32_t*>(arena_.alloc(size_t(T) * 4, what));
    b.slots = static_cast<int32_t*>(arena_.alloc(size_t(T) * 4, what));
    b.next = static_cast<int32_t*>(arena_.alloc(size_t(T) * 4, what));
    if (decode && T > kc::Blas::kGemvMaxM) {
      b.xh = arena_.alloc(size_t(T * E) * 2, what);
      b.yh = arena_.alloc(size_t(T * E) * 2, what);
    }
    if (decode && c_.arch == Arch::Mamba1) {
      b.part = f(kc::mamba1_layer_part_floats(E, c_.d_state, c_.dt_rank));
      b.bar = static_cast<unsigned*>(arena_.alloc(std::max<size_t>(1, layers_.size()) * sizeof(unsigned), what));
    }
    if (!decode && wt_ != DType::F32) b.yh = arena_.alloc(size_t(T * E) * 2, what);  // out_proj's (Mamba-1: and x_proj's) input
    return b;
  }
  void free_bufs(Bufs& b) {
    for (float* p : {b.h, b.proj, b.xc, b.dbc, b.dbc2, b.delta, b.y, b.scan_ws, b.logits}) arena_.free(p);
    for (int32_t* p : {b.ids, b.slots, b.next}) arena_.free(p);
    for (void* p : {b.xh, b.yh, static_cast<void*>(b.part), static_cast<void*>(b.bar)})
      if (p) arena_.free(p);
    b = Bufs{};
  }

  void grow_pool(int64_t cap) {
    if (cap <= capacity_) return;
    const size_t bytes = size_t(cap + 1) * size_t(sf_) * se();  // +1: the dummy slot padded decode rows write to
    char* ns = static_cast<char*>(arena_.alloc(bytes, std::to_string(cap) + " state slots of " + mib(size_t(sf_) * se())));
    check(cudaMemsetAsync(ns, 0, bytes, stream_), "cudaMemset states");
    if (states_) {
      check(cudaMemcpyAsync(ns, states_, size_t(capacity_) * size_t(sf_) * se(), cudaMemcpyDeviceToDevice, stream_), "grow states");
      check(cudaStreamSynchronize(stream_), "grow states");
      arena_.free(states_);
    }
    states_ = ns;
    std::lock_guard<std::mutex> g(pool_->mu);
    for (int64_t s = cap - 1; s >= capacity_; s--) pool_->free.push_back(s);
    capacity_ = cap;
    reset_graphs();  // they captured the old states pointer and dummy slot
  }

  void reset_graphs() {
    for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
  }

  void linear(const DMat& m, const float* x, int64_t M, int64_t xs, float* y, int64_t ys, const float* norm_w = nullptr,
              bool acc = false) {
    blas_.linear({M, m.N, m.K, x, xs, m.w, m.t, m.b, y, ys, norm_w, c_.norm_eps, acc}, stream_);
  }
  // The same with x (M, K) already in the weight dtype (M > 8, cuBLASLt).
  void linear_h(const DMat& m, const void* xh, int64_t M, int64_t xs, float* y, int64_t ys, bool acc = false) {
    kc::LinearArgs a{M, m.N, m.K, nullptr, xs, m.w, m.t, m.b, y, ys, nullptr, c_.norm_eps, acc};
    a.x_half = xh;
    blas_.linear(a, stream_);
  }

  // ---- prefill: one sequence, blocks of at most max_block_tokens rows ----
  void prefill_one(SeqRequest& q) {
    const int64_t Tmax = std::max<int64_t>(1, max_block_tokens);
    if (pre_.T < std::min(Tmax, q.n)) {
      if (pre_.T) free_bufs(pre_);
      pre_ = make_bufs(std::min(Tmax, std::max<int64_t>(q.n, 64)), "prefill scratch (max_block_tokens rows)");
      if (pre_.T > blas_rows_) {
        reset_graphs();
        blas_.reserve(pre_.T, std::max({c_.d_model, c_.d_inner, proj_width()}));
        blas_rows_ = pre_.T;
      }
    }
    const int64_t D = c_.d_model, V = c_.vocab;
    // Prefill kernels work on an f32 state: a bf16 slot is widened into scratch and rounded back after.
    float* st = sbf_ ? f32_state() : static_cast<float*>(slot_ptr(q.state->slot));
    if (sbf_) kc::convert_state(slot_ptr(q.state->slot), true, st, false, sf_, stream_);
    for (int64_t from = 0; from < q.n; from += pre_.T) {
      const int64_t T = std::min(pre_.T, q.n - from);
      check(cudaMemcpyAsync(pre_.ids, q.tokens + from, size_t(T) * 4, cudaMemcpyHostToDevice, stream_), "tokens");
      kc::embed(pre_.ids, T, embed_.w, embed_.t, D, pre_.h, stream_);
      for (const DLayer& l : layers_)
        c_.arch == Arch::Mamba1 ? mamba1_prefill(l, T, st + l.state_off) : mamba2_prefill(l, T, st + l.state_off);
      if (!q.logits) continue;
      if (q.all_logits) {
        for (int64_t r0 = 0; r0 < T; r0 += pre_.logit_rows) {
          const int64_t m = std::min(pre_.logit_rows, T - r0);
          linear(lm_head_, pre_.h + r0 * D, m, D, pre_.logits, V, norm_f_);
          check(cudaMemcpyAsync(q.logits + (from + r0) * V, pre_.logits, size_t(m * V) * 4, cudaMemcpyDeviceToHost, stream_), "logits");
        }
      } else if (from + T == q.n) {
        linear(lm_head_, pre_.h + (T - 1) * D, 1, D, pre_.logits, V, norm_f_);
        check(cudaMemcpyAsync(q.logits, pre_.logits, size_t(V) * 4, cudaMemcpyDeviceToHost, stream_), "logits");
      }
      check(cudaStreamSynchronize(stream_), "prefill");  // host logits/tokens buffers are reused next block
    }
    if (sbf_) {
      kc::convert_state(st, false, slot_ptr(q.state->slot), true, sf_, stream_);
      check(cudaStreamSynchronize(stream_), "prefill");  // the scratch serves the next call
    }
    q.state->pos += q.n;
  }

  void mamba1_prefill(const DLayer& l, int64_t T, float* st) {
    const int64_t D = c_.d_model, E = c_.d_inner, N = c_.d_state, R = c_.dt_rank, K = c_.d_conv, RN = R + 2 * N;
    Bufs& b = pre_;
    const kernels::ScanParams sp{T, E, N, b.xc, E, b.delta, E, l.dt_bias, l.A, b.dbc + R, RN, b.dbc + R + N, RN, l.D, b.proj + E,
                                 2 * E, st + (K - 1) * E, b.y, E};
    // bf16/f16 weights: the conv also writes x_proj's input and the single-pass scan writes out_proj's
    // input in the weight dtype (b.yh holds one, then the other), so no conversion kernel runs.
    const bool half = b.yh && T > kc::Blas::kGemvMaxM && !fuse_off_ && l.x_proj.t != DType::F32 && l.x_proj.t == l.out_proj.t &&
                      kc::selective_scan_warp_enabled() && kc::selective_scan_warp_ok(sp, b.yh, E);
    // And without an in_proj bias (hio): in_proj writes x | z in the weight dtype (as transformers' and
    // mamba_ssm's 16-bit models hold them), the conv reads x and writes only u in it, the scan reads u
    // and z in it. x | z sits in the first half of the f32 proj buffer, u in the f32 xc buffer.
    char* xz = reinterpret_cast<char*>(b.proj);
    char* zh = xz + 2 * E;  // z: E elements of 2 bytes into each row
    void* u = b.xc;
    const bool hio = half && half_io_ && !l.in_proj.b && l.in_proj.t == l.x_proj.t && kc::selective_scan_warp_ok(sp, b.yh, E, u, zh);
    if (hio) {
      blas_.linear({T, 2 * E, D, b.h, D, l.in_proj.w, l.in_proj.t, nullptr, nullptr, 2 * E, l.norm_w, c_.norm_eps, false}, stream_, xz);
      kc::causal_conv1d({T, E, K, nullptr, 2 * E, l.conv_w, l.conv_b, st, true, nullptr, E}, stream_, u, l.x_proj.t, xz);
    } else {
      linear(l.in_proj, b.h, T, D, b.proj, 2 * E, l.norm_w);  // (T, 2E): x | z
      kc::causal_conv1d({T, E, K, b.proj, 2 * E, l.conv_w, l.conv_b, st, true, b.xc, E}, stream_, half ? b.yh : nullptr, l.x_proj.t);
    }
    if (half) linear_h(l.x_proj, hio ? u : b.yh, T, E, b.dbc, RN);
    else linear(l.x_proj, b.xc, T, E, b.dbc, RN);  // (T, R+2N): δ | B | C
    if (c_.bcdt_rms) bcdt_norms(b.dbc, T);
    linear(l.dt_proj, b.dbc, T, RN, b.delta, E);  // (T, E), bias and softplus in the scan
    if (half) {
      kc::selective_scan_warp(sp, stream_, b.yh, l.out_proj.t, E, hio ? u : nullptr, hio ? zh : nullptr);
      linear_h(l.out_proj, b.yh, T, E, b.h, D, /*acc=*/true);
      return;
    }
    kc::selective_scan(sp, stream_, b.scan_ws);
    linear(l.out_proj, b.y, T, E, b.h, D, nullptr, /*acc=*/true);  // h += out_proj(y)
  }

  // FalconMamba: weightless RMSNorms of δ, B and C, in place in x_proj's output rows (T, R + 2N).
  void bcdt_norms(float* dbc, int64_t T) {
    const int64_t R = c_.dt_rank, N = c_.d_state, RN = R + 2 * N;
    for (auto [o, n] : {std::pair<int64_t, int64_t>{0, R}, {R, N}, {R + N, N}})
      kc::rms_norm({T, n, n, dbc + o, RN, nullptr, nullptr, 0, false, c_.mixer_rms_eps, dbc + o, RN}, stream_);
  }

  void mamba2_prefill(const DLayer& l, int64_t T, float* st) {
    const int64_t D = c_.d_model, E = c_.d_inner, K = c_.d_conv, CC = c_.conv_channels(), GN = c_.n_groups * c_.d_state;
    const int64_t W = proj_width();
    Bufs& b = pre_;
    const kernels::SsdParams sp{T, c_.n_heads, c_.head_dim, c_.n_groups, c_.d_state, kc::ssd_chunk_for(c_.chunk_size), b.xc, CC,
                                b.proj + E + CC, W, l.dt_bias, l.A, b.xc + E, CC, b.xc + E + GN, CC, l.D, c_.dt_min, c_.dt_max,
                                st + (K - 1) * CC, b.y, E};
    const kc::SsdMath math = kc::ssd_math(wt_ != DType::F32);
    // bf16/f16 weights: the SSD's output kernel applies the gated RMSNorm and writes out_proj's input
    // in the weight dtype (no f32 y, no norm or conversion kernel).
    const kc::SsdGatedNorm gn{b.proj, W, c_.gated_norm ? l.gnorm_w : nullptr, c_.gated_norm ? c_.norm_group : E, c_.norm_before_gate,
                              !c_.gated_norm, c_.norm_eps, b.yh, l.out_proj.t, E};
    // And without an in_proj bias (hio): in_proj writes z | xBC | dt in the weight dtype (as
    // transformers' and mamba_ssm's 16-bit models hold them; in the first half of the f32 proj
    // buffer), the conv reads xBC, the dt kernel dt and the fused norm z from it. The conv still
    // writes f32 x | B | C.
    const bool fused_ok = b.yh && T > kc::Blas::kGemvMaxM && !fuse_off_ && l.out_proj.t != DType::F32;
    char* xz = reinterpret_cast<char*>(b.proj);
    kc::SsdGatedNorm hn = gn;
    hn.half_in = l.in_proj.t, hn.z_half = xz, hn.dt_half = xz + (E + CC) * 2;  // 2-byte elements
    const bool hio = fused_ok && half_io_ && !l.in_proj.b && l.in_proj.t == l.out_proj.t && W % 8 == 0 &&  // 16-byte rows
                     kc::ssd_norm_fuses(sp, math, hn);
    if (hio) {
      blas_.linear({T, W, D, b.h, D, l.in_proj.w, l.in_proj.t, nullptr, nullptr, W, l.norm_w, c_.norm_eps, false}, stream_, xz);
      kc::causal_conv1d({T, CC, K, nullptr, W, l.conv_w, l.conv_b, st, true, b.xc, CC}, stream_, nullptr, l.in_proj.t, xz + E * 2);
    } else {
      linear(l.in_proj, b.h, T, D, b.proj, W, l.norm_w);  // (T, W): z | xBC | dt
      kc::causal_conv1d({T, CC, K, b.proj + E, W, l.conv_w, l.conv_b, st, true, b.xc, CC}, stream_);
    }
    if (hio || (fused_ok && kc::ssd_norm_fuses(sp, math, gn))) {
      kc::ssd_prefill(sp, b.scan_ws, stream_, math, &blas_, hio ? &hn : &gn);
      linear_h(l.out_proj, b.yh, T, E, b.h, D, true);
      return;
    }
    kc::ssd_prefill(sp, b.scan_ws, stream_, math, &blas_);
    gate(l, T, b);
    linear(l.out_proj, b.y, T, E, b.h, D, nullptr, true);
  }

  // Mamba-2's gated RMSNorm of y, in place, or into `yh` in dtype `t` (bf16/f16) when given.
  void gate(const DLayer& l, int64_t T, Bufs& b, void* yh = nullptr, DType t = DType::BF16) {
    const int64_t E = c_.d_inner;
    const kernels::RmsNormParams p{T, E, c_.gated_norm ? c_.norm_group : E, b.y, E, l.gnorm_w, b.proj, proj_width(), c_.norm_before_gate,
                          c_.norm_eps, b.y, E};
    if (yh) kc::rms_norm_half(p, yh, t, stream_, !c_.gated_norm);
    else kc::rms_norm(p, stream_, !c_.gated_norm);
  }

  // ---- decode: B sequences, one token each, under a CUDA graph per bucket ----
  void decode(const std::vector<SeqRequest>& reqs, const std::vector<size_t>& part) {
    const int64_t B = int64_t(part.size());
    int64_t bucket = 1;
    while (bucket < B) bucket *= 2;
    int32_t* tok = host_io_;
    int32_t* slot = host_io_ + max_bucket_;
    for (int64_t i = 0; i < bucket; i++) {
      tok[i] = i < B ? reqs[part[size_t(i)]].tokens[0] : 0;
      slot[i] = i < B ? int32_t(reqs[part[size_t(i)]].state->slot) : int32_t(capacity_);
    }
    auto it = graphs_.find(bucket);
    if (it == graphs_.end()) it = graphs_.emplace(bucket, capture(bucket)).first;
    check(cudaMemcpyAsync(dec_.ids, tok, size_t(bucket) * 4, cudaMemcpyHostToDevice, stream_), "decode ids");
    check(cudaMemcpyAsync(dec_.slots, slot, size_t(bucket) * 4, cudaMemcpyHostToDevice, stream_), "decode slots");
    check(cudaGraphLaunch(it->second, stream_), "cudaGraphLaunch");
  }

  cudaGraphExec_t capture(int64_t M) {
    // One eager run first (creates the cuBLASLt plans, surfaces errors outside capture). It must not
    // advance real sequences, so every row points at the dummy slot and token 0.
    std::vector<int32_t> dummy(static_cast<size_t>(M), int32_t(capacity_));
    check(cudaMemcpyAsync(dec_.slots, dummy.data(), size_t(M) * 4, cudaMemcpyHostToDevice, stream_), "decode slots");
    check(cudaMemsetAsync(dec_.ids, 0, size_t(M) * 4, stream_), "decode ids");
    check(cudaStreamSynchronize(stream_), "capture");
    decode_body(M);
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
    try {
      decode_body(M);
    } catch (...) {
      cudaGraph_t g;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    cudaGraph_t g;
    check(cudaStreamEndCapture(stream_, &g), "cudaStreamEndCapture");
    cudaGraphExec_t e;
    check(cudaGraphInstantiate(&e, g, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(g);
    return e;
  }

  void decode_body(int64_t M) {
    const int64_t D = c_.d_model, E = c_.d_inner, N = c_.d_state, K = c_.d_conv, CC = c_.conv_channels(), W = proj_width();
    const int64_t R = c_.dt_rank, RN = R + 2 * N, GN = c_.n_groups * N;
    Bufs& b = dec_;
    kc::embed(b.ids, M, embed_.w, embed_.t, D, b.h, stream_);
    // Mamba-1, batch <= 8, opt-in (SSM_CUDA_FUSE_XPROJ=1): conv step and x_proj in one kernel whose
    // blocks add their channel slices' shares into a zeroed dbc with float atomics; two dbc buffers
    // alternate by layer, each kernel zeroing the one the next layer uses. About 13% faster batch-1
    // decode on mamba-2.8b (H200: 396 vs 349 tok/s), but the atomics' order varies between launches,
    // so logits differ in the last bits from run to run (~1e-7); the default path is bit-reproducible.
    const bool fused = c_.arch == Arch::Mamba1 && M <= kc::kConvXprojMaxB && E % 8 == 0 && !fuse_off_ && fuse_xproj_;
    if (fused) check(cudaMemsetAsync(b.dbc, 0, size_t(M * RN) * 4, stream_), "dbc");
    // Mamba-1 at batch 1: one persistent kernel per layer (decode_layer.cu) where the GPU supports it.
    const bool whole = M == 1 && c_.arch == Arch::Mamba1 && layer_kernel_ok(b);
    if (whole) check(cudaMemsetAsync(b.bar, 0, layers_.size() * sizeof(unsigned), stream_), "grid barrier counters");
    for (size_t li = 0; li < layers_.size(); li++) {
      const DLayer& l = layers_[li];
      if (whole) {
        kc::mamba1_layer_step(layer_params(l, b, li), stream_);
        continue;
      }
      void* st = slot_ptr(0, l.state_off);
      const bool m1 = c_.arch == Arch::Mamba1;
      const kc::ConvStepParams cp{M, m1 ? E : CC, K, b.proj + (m1 ? 0 : E), W, l.conv_w, l.conv_b, st, sf_, b.slots, true, b.xc,
                                  m1 ? E : CC, sbf_};
      linear(l.in_proj, b.h, M, D, b.proj, W, l.norm_w);
      // Batches > 8 (cuBLASLt GEMMs): producers write the next GEMM's input in its weight dtype.
      const bool big = M > kc::Blas::kGemvMaxM && b.xh && !fuse_off_;
      if (m1) {
        float* dbc = li % 2 ? b.dbc2 : b.dbc;
        kc::Mamba1StepParams sp{M, E, N, R, b.xc, E, dbc, RN, l.dt_proj.w, l.dt_proj.t, l.dt_bias, l.A, l.D, b.proj + E, W,
                                c_.bcdt_rms, c_.mixer_rms_eps, slot_ptr(0, l.state_off + (K - 1) * E), sf_, b.slots, b.y, E, sbf_};
        if (fused) {
          kc::conv_xproj_step({cp, l.x_proj.w, l.x_proj.t, RN, dbc, RN, li % 2 ? b.dbc : b.dbc2, M * RN}, stream_);
        } else if (big && l.x_proj.t != DType::F32) {
          kc::ConvStepParams ch = cp;
          ch.y_half = b.xh, ch.y_half_dtype = l.x_proj.t, ch.y_half_stride = E;
          kc::causal_conv1d_step(ch, stream_);
          linear_h(l.x_proj, b.xh, M, E, dbc, RN);
        } else {
          kc::causal_conv1d_step(cp, stream_);
          linear(l.x_proj, b.xc, M, E, dbc, RN);
        }
        // Batches > 8 with d_state <= 16: mamba1_step takes the rows kernel (dt_proj and the norms
        // inside), which can write y in out_proj's weight dtype. Otherwise dt_proj runs as a GEMM
        // first and the batched lane-group kernel follows (the fused kernel took 79-110 us per layer
        // at batch 64 on mamba-2.8b, ncu).
        const bool rows = M > kc::Blas::kGemvMaxM && kc::mamba1_step_rows_ok(N, R);
        if (rows && big && l.out_proj.t != DType::F32) {
          sp.y_half = b.yh, sp.y_half_dtype = l.out_proj.t;
          kc::mamba1_step(sp, stream_);
          linear_h(l.out_proj, b.yh, M, E, b.h, D, true);
          continue;
        }
        if (M > kc::Blas::kGemvMaxM && !rows) {
          if (c_.bcdt_rms) {
            bcdt_norms(dbc, M);
            sp.bcdt_rms = false;
          }
          linear(l.dt_proj, dbc, M, RN, b.delta, E);
          sp.delta = b.delta;
          sp.delta_stride = E;
        }
        kc::mamba1_step(sp, stream_);
      } else {
        kc::causal_conv1d_step(cp, stream_);
        kc::ssd_step({M, c_.n_heads, c_.head_dim, c_.n_groups, N, b.xc, CC, b.proj + E + CC, W, l.dt_bias, l.A, l.D,
                      b.xc + E, CC, b.xc + E + GN, CC, c_.dt_min, c_.dt_max, slot_ptr(0, l.state_off + (K - 1) * CC), sf_, b.slots,
                      b.y, E, sbf_}, stream_);
        // Small batches: the gated RMSNorm runs inside out_proj's GEMV (it stages y·silu(z), normalised).
        if (kc::gemv_smem_fits(M, E) && !c_.norm_before_gate && !fuse_off_) {
          kc::LinearArgs a{M, D, E, b.y, E, l.out_proj.w, l.out_proj.t, l.out_proj.b, b.h, D,
                           c_.gated_norm ? l.gnorm_w : nullptr, c_.norm_eps, true};
          a.gate = b.proj;
          a.gate_stride = W;
          a.norm_group = c_.gated_norm ? c_.norm_group : 0;
          blas_.linear(a, stream_);
          continue;
        }
        if (big && l.out_proj.t != DType::F32) {
          gate(l, M, b, b.yh, l.out_proj.t);
          linear_h(l.out_proj, b.yh, M, E, b.h, D, true);
          continue;
        }
        gate(l, M, b);
      }
      linear(l.out_proj, b.y, M, E, b.h, D, nullptr, true);
    }
    linear(lm_head_, b.h, M, D, b.logits, c_.vocab, norm_f_);
  }

  kc::Mamba1LayerParams layer_params(const DLayer& l, Bufs& b, size_t li) const {
    const int64_t E = c_.d_inner, K = c_.d_conv;
    return {c_.d_model, E, c_.d_state, c_.dt_rank, K, b.h, l.norm_w, c_.norm_eps, l.in_proj.w, l.in_proj.b, l.conv_w, l.conv_b,
            l.x_proj.w, l.dt_proj.w, l.dt_bias, l.A, l.D, c_.bcdt_rms, c_.mixer_rms_eps, l.out_proj.w, l.out_proj.b, wt_,
            states_, sf_, b.slots, l.state_off, l.state_off + (K - 1) * E, sbf_, b.xc, b.proj + E, b.y, b.part, b.bar + li};
  }
  // Whether the fused Mamba-1 layer kernel runs batch-1 decode (opt-in while it measures slower than
  // the separate kernels: SSM_CUDA_LAYER=1; docs/cuda.md).
  bool layer_kernel_ok(Bufs& b) {
    if (layer_ok_ < 0) {
      const char* e = std::getenv("SSM_CUDA_LAYER");
      const bool off = !(e && *e && std::string(e) != "0") || fuse_off_ || fuse_xproj_ || layers_.empty() || !b.part;
      layer_ok_ = !off && kc::mamba1_layer_unsupported(layer_params(layers_[0], b, 0)).empty() &&
                  layers_[0].x_proj.t == wt_ && layers_[0].dt_proj.t == wt_ && layers_[0].out_proj.t == wt_ &&
                  layers_[0].in_proj.t == wt_ && !layers_[0].x_proj.b && !layers_[0].dt_proj.b;
    }
    return layer_ok_ > 0;
  }

  ModelConfig c_;
  Checkpoint ck_;
  DType wt_ = DType::BF16;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  DeviceArena arena_;
  kc::Blas blas_;
  int64_t blas_rows_ = 0;
  DMat embed_, lm_head_;
  const float* norm_f_ = nullptr;
  std::vector<DLayer> layers_;
  int64_t sf_ = 0;  // state elements per sequence
  bool sbf_ = false;  // states stored in bf16 (LoadOptions::state_dtype)
  float* f32_scratch_ = nullptr;  // sf_ floats: a bf16 slot widened for prefill and host transfers
  int64_t max_batch_ = 64, max_bucket_ = 64;
  std::shared_ptr<SlotPool> pool_ = std::make_shared<SlotPool>();
  int64_t capacity_ = 0;
  char* states_ = nullptr;  // (capacity + 1, sf_) elements of se() bytes
  Bufs dec_, pre_;
  int32_t* host_io_ = nullptr;  // pinned: token ids | slot indices of one decode launch
  std::map<int64_t, cudaGraphExec_t> graphs_;
  int layer_ok_ = -1;  // layer_kernel_ok(), decided once
  const bool fuse_off_ = [] { const char* e = std::getenv("SSM_CUDA_NOFUSE"); return e && *e && *e != '0'; }();
  // SSM_CUDA_HALF_IO=0: prefill keeps in_proj's output (and Mamba-1's conv output) in f32 (A/B switch).
  const bool half_io_ = [] { const char* e = std::getenv("SSM_CUDA_HALF_IO"); return !(e && *e == '0'); }();
  const bool fuse_xproj_ = [] { const char* e = std::getenv("SSM_CUDA_FUSE_XPROJ"); return e && *e && *e != '0'; }();
};

}  // namespace

std::unique_ptr<Model> make_cuda_model(ModelConfig cfg, Checkpoint ck, const std::string& what, const LoadOptions& opt) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    throw Error("device '" + opt.device + "': no usable CUDA GPU (" +
                (e != cudaSuccess ? std::string(cudaGetErrorString(e)) : std::string("no devices")) + ")");
  }
  int dev = 0;
  if (opt.device.rfind("cuda:", 0) == 0) {
    try {
      dev = std::stoi(opt.device.substr(5));
    } catch (...) {
      dev = -1;
    }
    if (dev < 0 || dev >= n) throw Error("device '" + opt.device + "': there are " + std::to_string(n) + " CUDA GPUs");
  }
  check(cudaSetDevice(dev), "cudaSetDevice");
  return std::make_unique<CudaLM>(std::move(cfg), std::move(ck), what, opt);
}

}  // namespace ssm

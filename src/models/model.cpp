// The LM around the mixers, shared by every supported architecture (transformers MambaModel /
// Mamba2Model, mamba_ssm MixerModel with fused add+norm):
//   h = embed(ids);  for each layer: h = h + mixer(rmsnorm(h));  logits = lm_head(rmsnorm_f(h))
// The residual stream is f32 throughout. Long inputs run in blocks of at most max_block_tokens rows,
// carrying each sequence's State between blocks, so memory stays bounded.
#include <algorithm>
#include <map>
#include <cstring>
#include <filesystem>

#include "layers/layer.hpp"
#include "models/lm.hpp"
#include "loader/checkpoint.hpp"
#include "loader/weights.hpp"
#include "ops/ops.hpp"
#include "ssm/model.hpp"

namespace ssm {
namespace {

struct Block {
  std::vector<float> norm_w;  // (D)
  std::unique_ptr<Mixer> mixer;
  int64_t state_offset = 0;
};

class LM final : public Model {
 public:
  LM(ModelConfig cfg, Checkpoint ck, const std::string& dir) : c_(std::move(cfg)), ck_(std::move(ck)) {
    Weights W(ck_, dir);
    const bool ssm_layout = c_.layout == "mamba_ssm";
    const std::string emb_name = ssm_layout ? "backbone.embedding.weight" : "backbone.embeddings.weight";
    const std::string vwhy = "vocab_size=" + std::to_string(c_.vocab_config) +
                             (ssm_layout ? " padded to " + std::to_string(c_.vocab) : "") +
                             ", hidden_size=" + std::to_string(c_.d_model);
    embed_ = W.matrix(emb_name, {c_.vocab, c_.d_model}, vwhy, &embed_scale_);
    if (W.has("lm_head.weight")) {
      lm_head_ = W.matrix("lm_head.weight", {c_.vocab, c_.d_model}, vwhy, &lm_head_scale_);
    } else if (c_.tie_embeddings) {
      lm_head_ = embed_;
      lm_head_scale_ = embed_scale_;
    }
    else throw Error(dir + ": missing tensor 'lm_head.weight' and config.json says the embeddings are not tied");
    norm_f_ = W.vec("backbone.norm_f.weight", {c_.d_model}, "hidden_size=" + std::to_string(c_.d_model));
    int64_t off = 0;
    for (int64_t i = 0; i < c_.n_layer; i++) {
      const std::string p = "backbone.layers." + std::to_string(i);
      Block b;
      b.norm_w = W.vec(p + ".norm.weight", {c_.d_model}, "hidden_size=" + std::to_string(c_.d_model));
      b.mixer = c_.arch == Arch::Mamba1 ? make_mamba1_mixer(c_, W, p + ".mixer") : make_mamba2_mixer(c_, W, p + ".mixer");
      b.state_offset = off;
      off += b.mixer->state_floats();
      blocks_.push_back(std::move(b));
    }
    state_floats_ = off;
  }

  const ModelConfig& config() const override { return c_; }

  ModelInfo info() const override {
    ModelInfo mi;
    count_params(c_, ck_, mi);
    mi.state_bytes = state_floats_ * int64_t(sizeof(float));
    return mi;
  }

  void copy_state(const State& from, State& to) override {
    check_state(from, "copy_state");
    to.data = from.data;
    to.pos = from.pos;
  }
  void state_to_host(const State& s, float* host) override {
    check_state(s, "state_to_host");
    std::memcpy(host, s.data.data(), s.bytes());
  }
  void state_from_host(const float* host, State& s) override {
    s.data.assign(host, host + state_floats_);
  }

  State new_state() const override {
    State s;
    s.data.assign(size_t(state_floats_), 0.f);
    return s;
  }

  void forward(std::vector<SeqRequest>& reqs) override {
    for (size_t r = 0; r < reqs.size(); r++) {
      const SeqRequest& q = reqs[r];
      if (q.n < 0) throw Error("forward: request " + std::to_string(r) + " has a negative token count");
      if (q.n > 0 && (!q.state || q.state->data.size() != size_t(state_floats_)))
        throw Error("forward: request " + std::to_string(r) + " has no state or a state of another model");
      for (int64_t i = 0; i < q.n; i++)
        if (q.tokens[i] < 0 || q.tokens[i] >= c_.vocab)
          throw Error("token id " + std::to_string(q.tokens[i]) + " at position " + std::to_string(i) + " of sequence " +
                      std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(c_.vocab) + ")");
    }
    std::vector<int64_t> done(reqs.size(), 0);
    for (;;) {
      // Gather the next block: up to max_block_tokens rows, taken from the requests in order.
      std::vector<Piece> pieces;
      int64_t T = 0;
      for (size_t r = 0; r < reqs.size() && T < max_block_tokens; r++) {
        int64_t take = std::min(reqs[r].n - done[r], max_block_tokens - T);
        if (take <= 0) continue;
        pieces.push_back({r, done[r], take, T});
        T += take;
      }
      if (T == 0) break;
      run_block(reqs, pieces, T);
      for (const Piece& p : pieces) done[p.req] += p.len, reqs[p.req].state->pos += p.len;
    }
  }

 private:
  struct Piece {
    size_t req;
    int64_t from, len, row;  // tokens [from, from+len) of request `req` at block rows [row, row+len)
  };

  void check_state(const State& s, const char* op) const {
    if (s.data.size() != size_t(state_floats_)) throw Error(std::string(op) + ": the state belongs to another model or backend");
  }

  void embed_rows(const std::vector<SeqRequest>& reqs, const std::vector<Piece>& pieces, float* h) const {
    const size_t es = dtype_size(embed_.dtype());
    const int64_t D = c_.d_model;
    for (const Piece& p : pieces)
      for (int64_t i = 0; i < p.len; i++) {
        int64_t id = reqs[p.req].tokens[p.from + i];
        float* row = h + (p.row + i) * D;
        to_f32(embed_.dtype(), static_cast<const char*>(embed_.raw()) + size_t(id * D) * es, row, size_t(D));
        if (!embed_scale_.empty()) {
          const uint16_t* sc = embed_scale_.data() + id * (D / kernels::kQ8Block);
          for (int64_t k = 0; k < D; k++) row[k] *= f16_to_f32(sc[k / kernels::kQ8Block]);
        }
      }
  }

  void run_block(std::vector<SeqRequest>& reqs, const std::vector<Piece>& pieces, int64_t T) {
    const int64_t D = c_.d_model, V = c_.vocab;
    h_.resize(size_t(T * D));
    xn_.resize(size_t(T * D));
    mo_.resize(size_t(T * D));
    embed_rows(reqs, pieces, h_.data());
    std::vector<Segment> segs(pieces.size());
    for (const Block& b : blocks_) {
      for (size_t i = 0; i < pieces.size(); i++)
        segs[i] = {pieces[i].row, pieces[i].len, reqs[pieces[i].req].state->data.data() + b.state_offset};
      rms_norm_rows(h_.data(), T, D, D, b.norm_w.data(), c_.norm_eps, xn_.data());
      b.mixer->forward(xn_.data(), T, segs, mo_.data(), ws_);
      for (int64_t i = 0; i < T * D; i++) h_[i] += mo_[i];
    }
    // LM head only on the rows whose logits are wanted.
    std::vector<std::pair<int64_t, float*>> rows;  // block row -> destination
    for (const Piece& p : pieces) {
      SeqRequest& q = reqs[p.req];
      if (!q.logits) continue;
      if (q.all_logits) {
        for (int64_t i = 0; i < p.len; i++) rows.push_back({p.row + i, q.logits + (p.from + i) * V});
      } else if (p.from + p.len == q.n) {
        rows.push_back({p.row + p.len - 1, q.logits});
      }
    }
    // In sub-blocks of at most kHeadRows rows, so the logits scratch stays at 51 MB for a 50k
    // vocabulary (all 2,048 rows of a block at once took 412 MB).
    constexpr int64_t kHeadRows = 256;
    for (int64_t r0 = 0; r0 < int64_t(rows.size()); r0 += kHeadRows) {
      const int64_t M = std::min<int64_t>(kHeadRows, int64_t(rows.size()) - r0);
      for (int64_t i = 0; i < M; i++)
        std::memcpy(xn_.data() + i * D, h_.data() + rows[size_t(r0 + i)].first * D, size_t(D) * sizeof(float));
      rms_norm_rows(xn_.data(), M, D, D, norm_f_.data(), c_.norm_eps, xn_.data());
      logits_.resize(size_t(M * V));
      ops::linear({M, V, D, xn_.data(), D, lm_head_.raw(), lm_head_.dtype(), nullptr, logits_.data(), V,
                   lm_head_scale_.empty() ? nullptr : lm_head_scale_.data()});
      for (int64_t i = 0; i < M; i++) std::memcpy(rows[size_t(r0 + i)].second, logits_.data() + i * V, size_t(V) * sizeof(float));
    }
  }

  ModelConfig c_;
  Checkpoint ck_;
  Tensor embed_, lm_head_;
  std::vector<uint16_t> embed_scale_, lm_head_scale_;  // q8 block scales, f16 bits (empty unless I8)
  std::vector<float> norm_f_;
  std::vector<Block> blocks_;
  int64_t state_floats_ = 0;
  std::vector<float> h_, xn_, mo_, logits_;  // scratch
  Scratch ws_;  // the mixers' scratch, shared by every layer
};

}  // namespace

std::unique_ptr<Model> make_cpu_model(ModelConfig cfg, Checkpoint ck, const std::string& what) {
  return std::make_unique<LM>(std::move(cfg), std::move(ck), what);
}

std::unique_ptr<Model> make_model(ModelConfig cfg, Checkpoint ck, const std::string& what, const LoadOptions& opt) {
  if (opt.device == "cpu") {
    if (opt.state_dtype != "f32") throw Error("state_dtype '" + opt.state_dtype + "': the CPU backend keeps states in f32 (bf16 states are a GPU option: --device cuda)");
    return make_cpu_model(std::move(cfg), std::move(ck), what);
  }
  if (opt.device == "cuda" || opt.device.rfind("cuda:", 0) == 0) return make_cuda_model(std::move(cfg), std::move(ck), what, opt);
  throw Error("device '" + opt.device + "' is not one of cpu, cuda, cuda:N");
}

std::unique_ptr<Model> Model::load(const std::string& dir) { return load(dir, LoadOptions{}); }

namespace {

// LoadOptions::weight_memory as Checkpoint::Memory. "auto" is Checkpoint's Auto on the CPU; on the GPU,
// whose weights are copied to the device anyway, mmap.
Checkpoint::Memory weight_memory(const LoadOptions& opt) {
  if (opt.weight_memory == "mmap") return Checkpoint::Memory::Mmap;
  if (opt.weight_memory == "resident") return Checkpoint::Memory::Resident;
  if (opt.weight_memory != "auto") throw Error("weight_memory '" + opt.weight_memory + "' is not one of auto, mmap, resident");
  return opt.device == "cpu" ? Checkpoint::Memory::Auto : Checkpoint::Memory::Mmap;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& opt) {
  namespace fs = std::filesystem;
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw Error(dir + ": no config.json (expected a Hugging Face model directory)");
  const std::string cfg_text = read_text_file(cfg_path);
  ModelConfig cfg = parse_model_config(cfg_text, cfg_path);
  Checkpoint ck = Checkpoint::open(dir, weight_memory(opt));
  return make_model(std::move(cfg), std::move(ck), dir, opt);
}

void Model::prefill(const int32_t* tokens, int64_t n, State& s, float* logits, bool all_logits) {
  std::vector<SeqRequest> r{{tokens, n, &s, logits, all_logits}};
  forward(r);
}

void Model::step(const int32_t* tokens, int64_t B, State* const* states, float* logits) {
  std::vector<SeqRequest> r(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; b++) r[b] = {tokens + b, 1, states[b], logits ? logits + b * vocab() : nullptr, false};
  forward(r);
}

void Model::step_sample(const int32_t* tokens, int64_t B, State* const* states, const SampleParams& sp, uint64_t step_no,
                        int32_t* next) {
  const int64_t V = vocab();
  std::vector<float> logits(static_cast<size_t>(B * V));
  step(tokens, B, states, logits.data());
  for (int64_t b = 0; b < B; b++) next[b] = sample_logits(logits.data() + b * V, V, sp, step_no, uint64_t(b));
}

}  // namespace ssm

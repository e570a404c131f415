// The LM around the mixers, shared by every supported architecture (transformers MambaModel /
// Mamba2Model, mamba_ssm MixerModel with fused add+norm):
//   h = embed(ids);  for each layer: h = h + mixer(rmsnorm(h));  logits = lm_head(rmsnorm_f(h))
// The residual stream is f32 throughout. Long inputs run in blocks of at most max_block_tokens rows,
// carrying each sequence's State between blocks, so memory stays bounded.
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "layers/layer.hpp"
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
    std::map<std::string, int64_t> by;
    for (const auto& f : ck_.files())
      for (const auto& [name, ti] : f->header().tensors) {
        if (name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_scale") == 0) continue;  // q8 scales
        int64_t n = 1;
        for (int64_t d : ti.shape) n *= d;
        by[ti.dtype_str] += n;
        mi.params += n;
      }
    // A tied lm_head stored twice (mamba_ssm files) is one parameter set.
    if (c_.tie_embeddings && ck_.has("lm_head.weight")) {
      by[ck_.info("lm_head.weight").dtype_str] -= c_.vocab * c_.d_model;
      mi.params -= c_.vocab * c_.d_model;
    }
    for (auto& [k, v] : by) mi.dtype_params.push_back({k, v});
    mi.state_bytes = state_floats_ * int64_t(sizeof(float));
    return mi;
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

  void embed_rows(const std::vector<SeqRequest>& reqs, const std::vector<Piece>& pieces, float* h) const {
    const size_t es = dtype_size(embed_.dtype());
    const int64_t D = c_.d_model;
    for (const Piece& p : pieces)
      for (int64_t i = 0; i < p.len; i++) {
        int64_t id = reqs[p.req].tokens[p.from + i];
        float* row = h + (p.row + i) * D;
        to_f32(embed_.dtype(), static_cast<const char*>(embed_.raw()) + size_t(id * D) * es, row, size_t(D));
        if (!embed_scale_.empty()) {
          const float* sc = embed_scale_.data() + id * (D / kernels::kQ8Block);
          for (int64_t k = 0; k < D; k++) row[k] *= sc[k / kernels::kQ8Block];
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
      b.mixer->forward(xn_.data(), T, segs, mo_.data());
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
    if (rows.empty()) return;
    const int64_t M = int64_t(rows.size());
    for (int64_t i = 0; i < M; i++)
      std::memcpy(xn_.data() + i * D, h_.data() + rows[i].first * D, size_t(D) * sizeof(float));
    rms_norm_rows(xn_.data(), M, D, D, norm_f_.data(), c_.norm_eps, xn_.data());
    logits_.resize(size_t(M * V));
    ops::linear({M, V, D, xn_.data(), D, lm_head_.raw(), lm_head_.dtype(), nullptr, logits_.data(), V,
                 lm_head_scale_.empty() ? nullptr : lm_head_scale_.data()});
    for (int64_t i = 0; i < M; i++) std::memcpy(rows[i].second, logits_.data() + i * V, size_t(V) * sizeof(float));
  }

  ModelConfig c_;
  Checkpoint ck_;
  Tensor embed_, lm_head_;
  std::vector<float> embed_scale_, lm_head_scale_;  // q8 block scales (empty unless I8)
  std::vector<float> norm_f_;
  std::vector<Block> blocks_;
  int64_t state_floats_ = 0;
  std::vector<float> h_, xn_, mo_, logits_;  // scratch
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path)) throw Error(dir + ": no config.json (expected a Hugging Face model directory)");
  ModelConfig cfg = parse_model_config(read_text_file(cfg_path), cfg_path);
  Checkpoint ck = Checkpoint::open(dir);
  return std::make_unique<LM>(std::move(cfg), std::move(ck), dir);
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

}  // namespace ssm

// Mamba-2 mixer (Dao & Gu 2024, §7; transformers Mamba2Mixer, mamba_ssm Mamba2):
//   [z | xBC | dt] = in_proj(u)            (T, E + (E + 2GN) + H)
//   xBC = silu(conv1d(xBC));  x, B, C = split(xBC)    x: (T, H·P), B/C: (T, G·N)
//   y   = SSD(x, dt, A, B, C, D)           chunked on multi-token segments, recurrent on single tokens
//   y   = RMSNormGated(y, z)               norm(y·silu(z))·w over groups of `norm_group` channels
//   out = out_proj(y)
// State per sequence: conv window (K-1, E+2GN) then SSM state (H, P, N), f32.
#include <cmath>

#include "layers/layer.hpp"
#include "ops/ops.hpp"

namespace ssm {
namespace {

class Mamba2Mixer final : public Mixer {
 public:
  Mamba2Mixer(const ModelConfig& c, const Weights& W, const std::string& p) : c_(c) {
    const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, K = c.d_conv, CC = c.conv_channels();
    const std::string why = "hidden_size=" + std::to_string(D) + ", expand*hidden_size=" + std::to_string(E) +
                            ", num_heads=" + std::to_string(H) + ", n_groups=" + std::to_string(c.n_groups) +
                            ", state_size=" + std::to_string(c.d_state) + ", conv_kernel=" + std::to_string(K);
    in_proj_ = Linear::load(W, p + ".in_proj", E + CC + H, D, c.proj_bias, why);
    conv_w_ = W.vec(p + ".conv1d.weight", {CC, 1, K}, why);
    conv_wt_ = transpose_conv(conv_w_, CC, K);
    if (c.conv_bias) conv_b_ = W.vec(p + ".conv1d.bias", {CC}, why);
    dt_bias_ = W.vec(p + ".dt_bias", {H}, why);
    A_ = W.vec(p + ".A_log", {H}, why);
    for (float& a : A_) a = -std::exp(a);
    D_ = W.vec(p + ".D", {H}, why);
    if (c.gated_norm) norm_w_ = W.vec(p + ".norm.weight", {E}, why);
    out_proj_ = Linear::load(W, p + ".out_proj", D, E, c.proj_bias, why);
  }

  int64_t state_floats() const override { return c_.state_floats_per_layer(); }
  int64_t params() const override {
    return in_proj_.params() + int64_t(conv_w_.size() + conv_b_.size() + dt_bias_.size() + A_.size() + D_.size() +
                                       norm_w_.size()) + out_proj_.params();
  }

  void forward(const float* u, int64_t T, const std::vector<Segment>& segs, float* out, Scratch& ws) override {
    const int64_t E = c_.d_inner, H = c_.n_heads, K = c_.d_conv, CC = c_.conv_channels(), GN = c_.n_groups * c_.d_state;
    const int64_t W = E + CC + H;  // in_proj width
    float* proj = ws.get(0, size_t(T * W));
    float* xbc = ws.get(1, size_t(T * CC));
    float* y = ws.get(2, size_t(T * E));
    in_proj_(u, T, c_.d_model, proj, W);
    for (const Segment& s : segs) {
      ops::causal_conv1d({s.len, CC, K, proj + s.start * W + E, W, conv_w_.data(),
                          conv_b_.empty() ? nullptr : conv_b_.data(), s.state, true, xbc + s.start * CC, CC,
                          conv_wt_.data()});
      kernels::SsdParams sp{s.len, H, c_.head_dim, c_.n_groups, c_.d_state, c_.chunk_size,
                            xbc + s.start * CC, CC, proj + s.start * W + E + CC, W,
                            dt_bias_.data(), A_.data(), xbc + s.start * CC + E, CC,
                            xbc + s.start * CC + E + GN, CC, D_.data(), c_.dt_min, c_.dt_max,
                            s.state + (K - 1) * CC, y + s.start * E, E};
      s.len == 1 ? ops::ssd_step(sp) : ops::ssd_prefill(sp);
    }
    const float* z = proj;
    if (c_.gated_norm) {
      ops::rms_norm({T, E, c_.norm_group, y, E, norm_w_.data(), z, W, c_.norm_before_gate, c_.norm_eps /* layer_norm_epsilon (HF); 1e-5 in mamba_ssm */,
                     y, E});
    } else {
      for (int64_t t = 0; t < T; t++)
        for (int64_t e = 0; e < E; e++) y[t * E + e] *= kernels::silu(z[t * W + e]);
    }
    out_proj_(y, T, E, out, c_.d_model);
  }

 private:
  ModelConfig c_;
  Linear in_proj_, out_proj_;
  std::vector<float> conv_w_, conv_wt_, conv_b_, dt_bias_, A_, D_, norm_w_;  // conv_wt_: conv_w_ as (K, CC)
};

}  // namespace

std::unique_ptr<Mixer> make_mamba2_mixer(const ModelConfig& c, const Weights& W, const std::string& prefix) {
  return std::make_unique<Mamba2Mixer>(c, W, prefix);
}

}  // namespace ssm

// Mamba-1 mixer (Gu & Dao 2023, Alg. 2; transformers MambaMixer / FalconMambaMixer), with
// FalconMamba's weightless RMSNorm on B, C and the Δ-rank input as an option (bcdt_rms).
//   [x | z] = in_proj(u)              (T, 2E)
//   xc      = silu(conv1d(x))         (T, E)     causal, carried window of K-1 inputs
//   [δ|B|C] = x_proj(xc)              (T, R+2N)
//   Δ_raw   = dt_proj.weight · δ      (T, E)     bias and softplus are applied inside the scan
//   y       = scan(xc, Δ, A, B, C, D) · silu(z);   out = out_proj(y)
// State per sequence: conv window (K-1, E) then SSM state (E, N), f32.
#include <cmath>

#include "layers/layer.hpp"
#include "ops/ops.hpp"

namespace ssm {
namespace {

class Mamba1Mixer final : public Mixer {
 public:
  Mamba1Mixer(const ModelConfig& c, const Weights& W, const std::string& p) : c_(c) {
    const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, R = c.dt_rank, K = c.d_conv;
    const std::string why = "hidden_size=" + std::to_string(D) + ", intermediate_size=" + std::to_string(E) +
                            ", state_size=" + std::to_string(N) + ", time_step_rank=" + std::to_string(R) +
                            ", conv_kernel=" + std::to_string(K);
    in_proj_ = Linear::load(W, p + ".in_proj", 2 * E, D, c.proj_bias, why);
    conv_w_ = W.vec(p + ".conv1d.weight", {E, 1, K}, why);
    conv_wt_ = transpose_conv(conv_w_, E, K);
    if (c.conv_bias) conv_b_ = W.vec(p + ".conv1d.bias", {E}, why);
    x_proj_ = Linear::load(W, p + ".x_proj", R + 2 * N, E, false, why);
    dt_proj_ = Linear::load(W, p + ".dt_proj", E, R, false, why);
    dt_bias_ = W.vec(p + ".dt_proj.bias", {E}, why);
    A_ = W.vec(p + ".A_log", {E, N}, why);
    for (float& a : A_) a = -std::exp(a);  // A = -exp(A_log), computed once
    D_ = W.vec(p + ".D", {E}, why);
    out_proj_ = Linear::load(W, p + ".out_proj", D, E, c.proj_bias, why);
  }

  int64_t state_floats() const override { return c_.state_floats_per_layer(); }
  int64_t params() const override {
    return in_proj_.params() + int64_t(conv_w_.size() + conv_b_.size()) + x_proj_.params() + dt_proj_.params() +
           int64_t(dt_bias_.size() + A_.size() + D_.size()) + out_proj_.params();
  }

  void forward(const float* u, int64_t T, const std::vector<Segment>& segs, float* out, Scratch& ws) override {
    const int64_t E = c_.d_inner, N = c_.d_state, R = c_.dt_rank, K = c_.d_conv;
    const int64_t RN = R + 2 * N;
    float* xz = ws.get(0, size_t(T * 2 * E));
    float* xc = ws.get(1, size_t(T * E));
    float* dbc = ws.get(2, size_t(T * RN));
    float* delta = ws.get(3, size_t(T * E));
    float* y = ws.get(4, size_t(T * E));
    in_proj_(u, T, c_.d_model, xz, 2 * E);  // (T, 2E): x | z
    for (const Segment& s : segs)
      ops::causal_conv1d({s.len, E, K, xz + s.start * 2 * E, 2 * E, conv_w_.data(),
                          conv_b_.empty() ? nullptr : conv_b_.data(), s.state, true, xc + s.start * E, E, conv_wt_.data()});
    x_proj_(xc, T, E, dbc, RN);  // (T, R+2N)
    if (c_.bcdt_rms) {
      rms_norm_rows(dbc, T, R, RN, nullptr, c_.mixer_rms_eps, dbc);
      rms_norm_rows(dbc + R, T, N, RN, nullptr, c_.mixer_rms_eps, dbc + R);
      rms_norm_rows(dbc + R + N, T, N, RN, nullptr, c_.mixer_rms_eps, dbc + R + N);
    }
    dt_proj_(dbc, T, RN, delta, E);  // (T, E), bias added in the scan
    for (const Segment& s : segs) {
      const int64_t t = s.start;
      ops::selective_scan({s.len, E, N, xc + t * E, E, delta + t * E, E, dt_bias_.data(), A_.data(),
                           dbc + t * RN + R, RN, dbc + t * RN + R + N, RN, D_.data(),
                           xz + t * 2 * E + E, 2 * E, s.state + (K - 1) * E, y + t * E, E});
    }
    out_proj_(y, T, E, out, c_.d_model);
  }

 private:
  ModelConfig c_;
  Linear in_proj_, x_proj_, dt_proj_, out_proj_;
  std::vector<float> conv_w_, conv_wt_, conv_b_, dt_bias_, A_, D_;  // conv_wt_: conv_w_ as (K, E)
};

}  // namespace

std::unique_ptr<Mixer> make_mamba1_mixer(const ModelConfig& c, const Weights& W, const std::string& prefix) {
  return std::make_unique<Mamba1Mixer>(c, W, prefix);
}

}  // namespace ssm

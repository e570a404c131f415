// Published shapes and random-weight models (see shapes.hpp). Weights are generated in parallel
// with a counter-based generator (splitmix64), so a 7B model takes seconds, not minutes.
#include "models/shapes.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include "models/lm.hpp"
#include "models/sample.hpp"

namespace ssm {
namespace {

struct ShapeDef {
  const char* name;
  const char* type;  // mamba, mamba2, falcon_mamba
  int64_t d_model, n_layer, vocab;
};

// Vocabularies as published: mamba-*-hf 50280 (50277 padded to 8), mamba2 50288 (padded to 16),
// FalconMamba 65024.
const ShapeDef kShapes[] = {
    {"mamba-130m", "mamba", 768, 24, 50280},       {"mamba-370m", "mamba", 1024, 48, 50280},
    {"mamba-790m", "mamba", 1536, 48, 50280},      {"mamba-1.4b", "mamba", 2048, 48, 50280},
    {"mamba-2.8b", "mamba", 2560, 64, 50280},      {"mamba2-130m", "mamba2", 768, 24, 50288},
    {"mamba2-370m", "mamba2", 1024, 48, 50288},    {"mamba2-780m", "mamba2", 1536, 48, 50288},
    {"mamba2-1.3b", "mamba2", 2048, 48, 50288},    {"mamba2-2.7b", "mamba2", 2560, 64, 50288},
    {"falcon-mamba-7b", "falcon_mamba", 4096, 64, 65024},
};

const ShapeDef& find_shape(const std::string& name) {
  for (const ShapeDef& s : kShapes)
    if (name == s.name) return s;
  std::string all;
  for (const ShapeDef& s : kShapes) all += std::string(all.empty() ? "" : ", ") + s.name;
  throw Error("unknown shape '" + name + "' (known: " + all + ")");
}

// Fills v with x = offset + scale·n, n ≈ standard normal (sum of 4 uniforms, rescaled), in parallel.
void fill(std::vector<float>& v, uint64_t seed, float scale, float offset) {
  const size_t n = v.size();
  const unsigned T = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  auto work = [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i++) {
      uint64_t h = splitmix64(seed * 0x9e3779b97f4a7c15ull + i);
      float s = 0;
      for (int k = 0; k < 4; k++) s += float((h >> (16 * k)) & 0xffff) * (1.f / 65536.f);
      v[i] = offset + scale * (s - 2.f) * 1.7320508f;  // var of a sum of 4 U(0,1) is 1/3
    }
  };
  if (n < (1u << 20)) return work(0, n);
  std::vector<std::thread> th;
  for (unsigned t = 0; t < T; t++) th.emplace_back(work, n * t / T, n * (t + 1) / T);
  for (auto& t : th) t.join();
}

}  // namespace

std::vector<std::string> shape_names() {
  std::vector<std::string> v;
  for (const ShapeDef& s : kShapes) v.push_back(s.name);
  return v;
}

std::string shape_config_json(const std::string& name) {
  const ShapeDef& s = find_shape(name);
  const std::string common = "\"hidden_size\":" + std::to_string(s.d_model) + ",\"num_hidden_layers\":" +
                             std::to_string(s.n_layer) + ",\"vocab_size\":" + std::to_string(s.vocab) +
                             ",\"layer_norm_epsilon\":1e-5,\"conv_kernel\":4,\"use_bias\":false,\"use_conv_bias\":true";
  const std::string type = s.type;
  if (type == "mamba")
    return "{\"model_type\":\"mamba\"," + common + ",\"state_size\":16,\"expand\":2,\"intermediate_size\":" +
           std::to_string(2 * s.d_model) + ",\"time_step_rank\":" + std::to_string((s.d_model + 15) / 16) +
           ",\"tie_word_embeddings\":true}";
  if (type == "falcon_mamba")
    return "{\"model_type\":\"falcon_mamba\"," + common + ",\"state_size\":16,\"expand\":16,\"intermediate_size\":" +
           std::to_string(2 * s.d_model) + ",\"time_step_rank\":256,\"mixer_rms_eps\":1e-6,\"tie_word_embeddings\":false}";
  return "{\"model_type\":\"mamba2\"," + common + ",\"state_size\":128,\"expand\":2,\"num_heads\":" +
         std::to_string(2 * s.d_model / 64) + ",\"head_dim\":64,\"n_groups\":1,\"chunk_size\":256,\"tie_word_embeddings\":true}";
}

ModelConfig shape_config(const std::string& name) {
  return parse_model_config(shape_config_json(name), "shape " + name);
}

int64_t config_params(const ModelConfig& c) {
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, CC = c.conv_channels();
  int64_t layer = D;  // block norm
  if (c.arch == Arch::Mamba1) {
    const int64_t R = c.dt_rank;
    layer += 2 * E * D + CC * K + (c.conv_bias ? CC : 0) + (R + 2 * N) * E + E * R + E + E * N + E + D * E;
  } else {
    const int64_t H = c.n_heads;
    layer += (E + CC + H) * D + CC * K + (c.conv_bias ? CC : 0) + 3 * H + (c.gated_norm ? E : 0) + D * E;
  }
  return c.n_layer * layer + D + c.vocab * D * (c.tie_embeddings ? 1 : 2);
}

std::unique_ptr<Model> random_model(const std::string& name, DType dtype, const LoadOptions& opt, uint64_t seed) {
  ModelConfig c = shape_config(name);
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, CC = c.conv_channels();
  std::vector<std::pair<std::string, Tensor>> ts;
  uint64_t stream = seed * 1000003;
  std::vector<float> buf;
  auto add_v = [&](const std::string& n, Shape shape, const std::vector<float>& v, DType t) {
    ts.push_back({n, Tensor::from_f32(v.data(), t, std::move(shape))});
  };
  auto add = [&](const std::string& n, Shape shape, float scale, float offset = 0.f, bool matrix = false) {
    int64_t cnt = 1;
    for (int64_t d : shape) cnt *= d;
    buf.resize(size_t(cnt));
    fill(buf, ++stream, scale, offset);
    add_v(n, std::move(shape), buf, matrix ? dtype : DType::F32);
  };
  // Δ = softplus(dt_bias) log-uniform in [1e-3, 1e-1], the reference init.
  auto dt_bias = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
      double u = double(splitmix64(stream * 31 + uint64_t(i)) >> 11) * 0x1p-53;
      double dt = std::exp(std::log(1e-3) + u * (std::log(1e-1) - std::log(1e-3)));
      v[size_t(i)] = float(dt + std::log(-std::expm1(-dt)));
    }
    ++stream;
    return v;
  };
  const float wsd = 0.02f, out_sd = 0.02f / std::sqrt(float(2 * c.n_layer));
  add("backbone.embeddings.weight", {c.vocab, D}, wsd, 0.f, true);
  for (int64_t i = 0; i < c.n_layer; i++) {
    const std::string p = "backbone.layers." + std::to_string(i);
    add(p + ".norm.weight", {D}, 0.f, 1.f);
    const std::string m = p + ".mixer";
    add(m + ".conv1d.weight", {CC, 1, K}, 0.3f);
    add(m + ".conv1d.bias", {CC}, 0.02f);
    add(m + ".out_proj.weight", {D, E}, out_sd, 0.f, true);
    if (c.arch == Arch::Mamba1) {
      const int64_t R = c.dt_rank;
      add(m + ".in_proj.weight", {2 * E, D}, wsd, 0.f, true);
      add(m + ".x_proj.weight", {R + 2 * N, E}, wsd, 0.f, true);
      add(m + ".dt_proj.weight", {E, R}, 1.f / std::sqrt(float(R)) * 0.1f, 0.f, true);
      add_v(m + ".dt_proj.bias", {E}, dt_bias(E), DType::F32);
      std::vector<float> a(static_cast<size_t>(E * N));
      for (int64_t e = 0; e < E; e++)
        for (int64_t n = 0; n < N; n++) a[size_t(e * N + n)] = std::log(float(n + 1));
      add_v(m + ".A_log", {E, N}, a, DType::F32);
      add(m + ".D", {E}, 0.f, 1.f);
    } else {
      const int64_t H = c.n_heads;
      add(m + ".in_proj.weight", {E + CC + H, D}, wsd, 0.f, true);
      add_v(m + ".dt_bias", {H}, dt_bias(H), DType::F32);
      std::vector<float> a(static_cast<size_t>(H));
      for (int64_t h = 0; h < H; h++) a[size_t(h)] = std::log(1.f + 15.f * float(h) / float(std::max<int64_t>(H - 1, 1)));
      add_v(m + ".A_log", {H}, a, DType::F32);
      add(m + ".D", {H}, 0.f, 1.f);
      add(m + ".norm.weight", {E}, 0.f, 1.f);
    }
  }
  add("backbone.norm_f.weight", {D}, 0.f, 1.f);
  if (!c.tie_embeddings) add("lm_head.weight", {c.vocab, D}, wsd, 0.f, true);
  Checkpoint ck = Checkpoint::from_tensors(std::move(ts), "shape " + name);
  return make_model(std::move(c), std::move(ck), "shape " + name, opt);
}

}  // namespace ssm

// Random tiny checkpoints for invariant tests (see tiny_model.hpp).
#include "support/tiny_model.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/tensor.hpp"
#include "loader/safetensors.hpp"

namespace ssm::test {
namespace fs = std::filesystem;

std::string temp_dir(const std::string& tag) {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() / ("ssm_test_" + std::to_string(::getpid()) + "_" + tag + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(g() % uint32_t(vocab));
  return v;
}

void write_tiny_model(const std::string& dir, const TinySpec& s) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::mt19937 g(s.seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<std::pair<std::string, Tensor>> ts;
  auto add = [&](const std::string& name, Shape shape, float scale, float offset = 0.f) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = offset + scale * nd(g);
    ts.push_back({name, Tensor::from_f32(v.data(), s.dtype, shape)});
  };
  const int64_t D = s.d_model, E = s.expand * D, N = s.d_state, K = s.d_conv;
  nlohmann::json cfg = {{"model_type", s.model_type}, {"hidden_size", D}, {"num_hidden_layers", s.n_layer},
                        {"vocab_size", s.vocab}, {"state_size", N}, {"conv_kernel", K}, {"expand", s.expand},
                        {"layer_norm_epsilon", 1e-5}, {"tie_word_embeddings", true}};
  add("backbone.embeddings.weight", {s.vocab, D}, 1.f);
  for (int64_t i = 0; i < s.n_layer; i++) {
    std::string p = "backbone.layers." + std::to_string(i);
    add(p + ".norm.weight", {D}, 0.2f, 1.f);
    std::string m = p + ".mixer";
    if (s.model_type == "mamba2") {
      const int64_t H = s.n_heads, CC = E + 2 * s.n_groups * N;
      add(m + ".in_proj.weight", {E + CC + H, D}, 0.4f);
      add(m + ".conv1d.weight", {CC, 1, K}, 0.5f);
      add(m + ".conv1d.bias", {CC}, 0.2f);
      add(m + ".dt_bias", {H}, 0.5f, -1.f);
      add(m + ".A_log", {H}, 0.3f, 0.5f);
      add(m + ".D", {H}, 0.3f, 1.f);
      add(m + ".norm.weight", {E}, 0.2f, 1.f);
      add(m + ".out_proj.weight", {D, E}, 0.2f);
    } else {
      const int64_t R = s.dt_rank;
      add(m + ".in_proj.weight", {2 * E, D}, 0.4f);
      add(m + ".conv1d.weight", {E, 1, K}, 0.5f);
      add(m + ".conv1d.bias", {E}, 0.2f);
      add(m + ".x_proj.weight", {R + 2 * N, E}, 0.3f);
      add(m + ".dt_proj.weight", {E, R}, 0.5f);
      add(m + ".dt_proj.bias", {E}, 0.5f, -1.f);
      add(m + ".A_log", {E, N}, 0.3f, 0.7f);
      add(m + ".D", {E}, 0.3f, 1.f);
      add(m + ".out_proj.weight", {D, E}, 0.2f);
    }
  }
  add("backbone.norm_f.weight", {D}, 0.2f, 1.f);
  if (s.model_type == "mamba2") {
    cfg["num_heads"] = s.n_heads;
    cfg["head_dim"] = s.head_dim;
    cfg["n_groups"] = s.n_groups;
    cfg["chunk_size"] = s.chunk;
  } else {
    cfg["intermediate_size"] = E;
    cfg["time_step_rank"] = s.dt_rank;
    if (s.model_type == "falcon_mamba") cfg["mixer_rms_eps"] = 1e-3;
  }
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  std::ofstream(dir + "/config.json") << cfg.dump(1);
}

}  // namespace ssm::test

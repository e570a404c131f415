// Public model API: load a Hugging Face / mamba_ssm model directory, create per-sequence States, and
// run token blocks. A State is the whole recurrent memory of one sequence (fixed size, f32). On the
// CPU it lives in State::data; on a GPU it lives in a device slot owned by the model, and State holds
// a handle to it. copy_state forks a sequence and state_to_host / state_from_host save and restore it
// on every backend.
//
//   auto m = ssm::Model::load("mamba-130m-hf");                    // CPU
//   auto g = ssm::Model::load("mamba-130m-hf", {.device = "cuda"}); // GPU, bf16 weights
//   ssm::State s = m->new_state();
//   std::vector<float> logits(m->vocab());
//   m->prefill(prompt.data(), prompt.size(), s, logits.data(), /*all_logits=*/false);
//   m->step(&tok, 1, &sp, logits.data());   // recurrent decode, one token per sequence
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ssm/config.hpp"
#include "ssm/error.hpp"

namespace ssm {

struct LoadOptions {
  std::string device = "cpu";       // "cpu" or "cuda" ("cuda:N" picks a GPU)
  std::string dtype = "auto";       // weights on the GPU: auto (= bf16), bf16, f16, f32. CPU: checkpoint dtype
  std::string state_dtype = "f32";  // recurrent state storage: f32, or bf16 on CUDA (math stays f32)
  int64_t max_batch = 64;           // GPU: most live States (device state slots) at once
  // How the weight files are held: "mmap" (page cache, 4 KiB pages), "resident" (read whole into
  // anonymous memory advised for transparent huge pages; ~1 s per GB more start-up), or
  // "auto" (the default): resident on the CPU when the weight files take at most half of the memory
  // available (MemAvailable), else mmap; mmap on the GPU. Resident CPU decode measured +8% to +21% in
  // session 8's round and from +22% to -23% in earlier ones on the project's 2-core VM (docs/cpu.md).
  std::string weight_memory = "auto";
};

struct State {
  std::vector<float> data;  // CPU models: all layers, [conv window (K-1, C) | SSM state] per layer
  int64_t pos = 0;          // tokens absorbed so far
  // GPU models: the device slot holding this sequence's state (same layout as `data`), released when
  // the last copy of the handle goes. Copying a State copies the handle: use Model::copy_state to fork.
  std::shared_ptr<void> slot_handle;
  int64_t slot = -1;
  size_t bytes() const { return data.size() * sizeof(float); }
};

// One sequence's share of a forward call.
struct SeqRequest {
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  State* state = nullptr;
  float* logits = nullptr;  // (n, vocab) if all_logits, else (1, vocab) for the last token; nullable
  bool all_logits = false;
};

struct ModelInfo {
  int64_t params = 0;
  std::vector<std::pair<std::string, int64_t>> dtype_params;  // parameter count per stored dtype
  int64_t state_bytes = 0;                                     // one sequence
  std::string state_dtype = "f32";                             // how states are stored
  std::string device = "cpu";                                  // "cpu" or the GPU's name
  int64_t device_bytes = 0;                                    // GPU memory held by the model (weights, slots, scratch)
};

// Next-token choice made where the logits are (on the GPU for CUDA models, so only ids come back).
// temperature 0 = greedy argmax; top_k 0 = off; top_p 1 = off.
struct SampleParams {
  float temperature = 0.f;
  int top_k = 0;
  float top_p = 1.f;
  uint64_t seed = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  // Reads config.json and the safetensors of `dir`; every tensor is checked against the config.
  static std::unique_ptr<Model> load(const std::string& dir);
  static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& opt);

  virtual const ModelConfig& config() const = 0;
  virtual ModelInfo info() const = 0;
  int64_t vocab() const { return config().vocab; }
  virtual State new_state() const = 0;

  // Runs every request's tokens from its state (advancing it). Multi-token requests take the
  // parallel/chunked path, one-token requests the recurrent step. Token ids are validated.
  virtual void forward(std::vector<SeqRequest>& reqs) = 0;

  void prefill(const int32_t* tokens, int64_t n, State& s, float* logits, bool all_logits);
  // Recurrent decode: one token per sequence, logits (B, vocab).
  void step(const int32_t* tokens, int64_t B, State* const* states, float* logits);
  // Recurrent decode that returns the next token of each sequence instead of logits. `step` counts
  // sampling steps so that seeded sampling differs from token to token.
  virtual void step_sample(const int32_t* tokens, int64_t B, State* const* states, const SampleParams& sp,
                           uint64_t step, int32_t* next);

  // State save/restore/fork on every backend. `host` has state_floats() elements.
  virtual void copy_state(const State& from, State& to) = 0;
  virtual void state_to_host(const State& s, float* host) = 0;
  virtual void state_from_host(const float* host, State& s) = 0;
  int64_t state_floats() const {
    const ModelInfo mi = info();
    return mi.state_bytes / (mi.state_dtype == "bf16" ? 2 : 4);
  }

  // Upper bound on token rows processed per internal block (bounds prefill memory).
  int64_t max_block_tokens = 2048;
};

// Host version of the GPU sampler (same algorithm): picks a token from one row of logits.
int32_t sample_logits(const float* logits, int64_t V, const SampleParams& sp, uint64_t step, uint64_t row);

}  // namespace ssm

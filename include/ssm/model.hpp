// Public model API: load a Hugging Face / mamba_ssm model directory, create per-sequence States, and
// run token blocks. A State is the whole recurrent memory of one sequence (fixed size, f32), so
// copying it forks the sequence and serialising it saves the session.
//
//   auto m = ssm::Model::load("mamba-130m-hf");
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

struct State {
  std::vector<float> data;  // all layers: [conv window (K-1, C) | SSM state] per layer
  int64_t pos = 0;          // tokens absorbed so far
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
};

class Model {
 public:
  virtual ~Model() = default;
  // Reads config.json and the safetensors of `dir`; every tensor is checked against the config.
  static std::unique_ptr<Model> load(const std::string& dir);

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

  // Upper bound on token rows processed per internal block (bounds prefill memory).
  int64_t max_block_tokens = 2048;
};

}  // namespace ssm

// Sampler: turns one row of logits into the next token. Order follows transformers' generate():
// penalties (repetition, then OpenAI presence/frequency) -> temperature -> top-k -> top-p -> min-p ->
// draw. temperature 0 (or top_k 1) is greedy argmax after penalties. Same seed, same draws.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace ssm {

struct SamplingParams {
  float temperature = 0.8f;   // 0 = greedy
  int top_k = 40;             // 0 = off
  float top_p = 0.95f;        // 1 = off
  float min_p = 0.05f;        // 0 = off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.f;  // transformers: logit > 0 ? logit / r : logit * r, over seen tokens
  float presence_penalty = 0.f;    // OpenAI: logit -= presence if count > 0
  float frequency_penalty = 0.f;   // OpenAI: logit -= frequency * count
  int penalty_last_n = 64;         // window of recent tokens the penalties look at (-1 = all)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // Records a token (prompt or generated) for the penalties.
  void accept(int32_t token);
  // Picks the next token from logits (modified in place by penalties).
  int32_t sample(float* logits, int64_t vocab);
  const SamplingParams& params() const { return p_; }
  // Throws ssm::Error naming the field when a parameter is out of range.
  static void validate(const SamplingParams& p);

 private:
  void apply_penalties(float* logits, int64_t vocab) const;
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
  std::vector<std::pair<float, int32_t>> cand_;  // scratch
};

}  // namespace ssm

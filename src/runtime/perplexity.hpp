// Perplexity over a token stream: non-overlapping windows of `ctx` tokens, each from a fresh state;
// every token of a window but its first is predicted, so a window of n tokens scores n-1 of them.
// ppl = exp(mean negative log-likelihood). (llama.cpp scores only the second half of each window
// because attention models lack context early on; an SSM window is scored whole, like
// scripts/default_model/train.py does with transformers.)
#pragma once
#include <vector>

#include "ssm/model.hpp"

namespace ssm {

struct PerplexityResult {
  double ppl = 0, nll_sum = 0;
  int64_t scored = 0, windows = 0;
};

PerplexityResult perplexity(Model& m, const std::vector<int32_t>& ids, int64_t ctx);

}  // namespace ssm

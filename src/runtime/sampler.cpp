// Sampler implementation (see sampler.hpp).
#include "runtime/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "ssm/error.hpp"

namespace ssm {

void Sampler::validate(const SamplingParams& p) {
  auto bad = [](const std::string& f, const std::string& want) { throw Error("sampling: " + f + " must be " + want); };
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) bad("temperature", ">= 0");
  if (p.top_k < 0) bad("top_k", ">= 0 (0 disables it)");
  if (!(p.top_p > 0 && p.top_p <= 1)) bad("top_p", "in (0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) bad("min_p", "in [0, 1]");
  if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty)) bad("repetition_penalty", "> 0");
  if (!std::isfinite(p.presence_penalty) || std::fabs(p.presence_penalty) > 2) bad("presence_penalty", "in [-2, 2]");
  if (!std::isfinite(p.frequency_penalty) || std::fabs(p.frequency_penalty) > 2) bad("frequency_penalty", "in [-2, 2]");
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { validate(p); }

void Sampler::accept(int32_t token) { history_.push_back(token); }

void Sampler::apply_penalties(float* logits, int64_t vocab) const {
  if (p_.repetition_penalty == 1.f && p_.presence_penalty == 0.f && p_.frequency_penalty == 0.f) return;
  size_t from = p_.penalty_last_n < 0 || size_t(p_.penalty_last_n) >= history_.size() ? 0 : history_.size() - size_t(p_.penalty_last_n);
  std::unordered_map<int32_t, int> count;
  for (size_t i = from; i < history_.size(); i++)
    if (history_[i] >= 0 && history_[i] < vocab) count[history_[i]]++;
  for (const auto& [tok, n] : count) {
    float& l = logits[tok];
    if (p_.repetition_penalty != 1.f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    l -= p_.presence_penalty + p_.frequency_penalty * float(n);
  }
}

int32_t Sampler::sample(float* logits, int64_t vocab) {
  apply_penalties(logits, vocab);
  if (p_.temperature == 0.f || p_.top_k == 1) return int32_t(std::max_element(logits, logits + vocab) - logits);
  cand_.resize(size_t(vocab));
  for (int64_t i = 0; i < vocab; i++) cand_[i] = {logits[i] / p_.temperature, int32_t(i)};
  auto desc = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t n = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), desc);
    n = size_t(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), desc);
  }
  // Softmax over the survivors (sorted, best first).
  std::vector<double> prob(n);
  double mx = cand_[0].first, z = 0;
  for (size_t i = 0; i < n; i++) z += prob[i] = std::exp(double(cand_[i].first) - mx);
  for (auto& q : prob) q /= z;
  // top-p: smallest prefix whose mass reaches top_p (always at least one token).
  if (p_.top_p < 1.f) {
    double c = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; i++) {
      c += prob[i];
      if (c >= p_.top_p) { keep = i + 1; break; }
    }
    n = keep;
  }
  // min-p: drop tokens below min_p times the best probability.
  if (p_.min_p > 0.f) {
    size_t keep = 1;
    while (keep < n && prob[keep] >= p_.min_p * prob[0]) keep++;
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; i++) total += prob[i];
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < n; i++) {
    r -= prob[i];
    if (r < 0) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace ssm

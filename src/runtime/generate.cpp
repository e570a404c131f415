// Generation loop and stop-string filter (see generate.hpp).
#include "runtime/generate.hpp"

#include <algorithm>
#include <chrono>

#include "ssm/error.hpp"

namespace ssm {

GenerateResult generate(Model& m, State& state, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<bool(int32_t)>& on_token) {
  if (opt.max_new_tokens < 0) throw Error("generate: max_new_tokens must be >= 0, got " + std::to_string(opt.max_new_tokens));
  if (prompt.empty()) throw Error("generate: the prompt is empty (give at least one token)");
  using clock = std::chrono::steady_clock;
  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  Sampler sampler(opt.sampling);
  for (int32_t t : prompt) sampler.accept(t);
  const int64_t V = m.vocab();
  std::vector<float> logits(static_cast<size_t>(V));
  auto t0 = clock::now();
  m.prefill(prompt.data(), int64_t(prompt.size()), state, logits.data(), false);
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.finish_reason = "length";
  State* sp = &state;
  for (int64_t i = 0; i < opt.max_new_tokens; i++) {
    int32_t tok = sampler.sample(logits.data(), V);
    if (!opt.ignore_eos && std::find(opt.eos_ids.begin(), opt.eos_ids.end(), tok) != opt.eos_ids.end()) {
      r.finish_reason = "stop";
      break;
    }
    r.tokens.push_back(tok);
    sampler.accept(tok);
    if (!on_token(tok)) {
      r.finish_reason = "stop";
      break;
    }
    if (i + 1 == opt.max_new_tokens) break;  // no logits needed after the last token
    m.step(&tok, 1, &sp, logits.data());
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

std::string StopFilter::push(const std::string& text) {
  if (stopped_) return "";
  pending_ += text;
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    size_t p = pending_.find(s);
    if (p != std::string::npos) cut = std::min(cut, p);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Keep the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > keep; k--)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopFilter::flush() {
  std::string out = stopped_ ? "" : pending_;
  pending_.clear();
  return out;
}

}  // namespace ssm

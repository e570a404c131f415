// Generation loop: prefill the prompt through the parallel path once, then one recurrent step per
// new token (never re-prefilling), sampling each token and handing it to a callback that may stop
// the loop (stop strings, a closed client). Text handling lives with the caller.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "runtime/sampler.hpp"
#include "ssm/model.hpp"

namespace ssm {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  std::vector<int32_t> eos_ids;  // generation stops after producing one of these (not emitted)
  bool ignore_eos = false;
  SamplingParams sampling;
};

struct GenerateResult {
  std::vector<int32_t> tokens;   // generated ids (EOS excluded)
  std::string finish_reason;     // "length" | "stop" (EOS or callback)
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// `on_token(id)` returns false to stop. The state must be fresh or hold a prefix the prompt continues.
GenerateResult generate(Model& m, State& state, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<bool(int32_t)>& on_token);

// Holds back streamed text that could still turn into a stop string. push() returns the text that is
// safe to show; `stopped()` turns true once a stop string completed (its text and everything after is dropped).
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string push(const std::string& text);
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace ssm

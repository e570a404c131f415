// Windowed perplexity (see perplexity.hpp). Log-softmax in f64 for a stable sum over many tokens.
#include "runtime/perplexity.hpp"

#include <algorithm>
#include <cmath>

#include "ssm/error.hpp"

namespace ssm {

PerplexityResult perplexity(Model& m, const std::vector<int32_t>& ids, int64_t ctx) {
  if (ctx < 2) throw Error("perplexity: --ctx must be at least 2, got " + std::to_string(ctx));
  if (ids.size() < 2) throw Error("perplexity: the text must encode to at least 2 tokens");
  const int64_t V = m.vocab();
  PerplexityResult r;
  std::vector<float> logits;
  for (size_t s = 0; s + 1 < ids.size(); s += size_t(ctx)) {
    const int64_t n = std::min<int64_t>(ctx, int64_t(ids.size() - s));
    if (n < 2) break;
    logits.resize(size_t(n * V));
    State st = m.new_state();
    m.prefill(ids.data() + s, n, st, logits.data(), true);
    for (int64_t i = 0; i + 1 < n; i++) {
      const float* l = logits.data() + i * V;
      double mx = *std::max_element(l, l + V), z = 0;
      for (int64_t v = 0; v < V; v++) z += std::exp(double(l[v]) - mx);
      r.nll_sum -= double(l[ids[s + size_t(i) + 1]]) - mx - std::log(z);
      r.scored++;
    }
    r.windows++;
  }
  r.ppl = std::exp(r.nll_sum / double(r.scored));
  return r;
}

}  // namespace ssm

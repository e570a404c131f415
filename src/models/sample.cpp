// Host implementation of the shared sampling rule (see sample.hpp); the CUDA sampler follows it.
#include "models/sample.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "ssm/model.hpp"

namespace ssm {

int32_t sample_logits(const float* l, int64_t V, const SampleParams& sp, uint64_t step, uint64_t row) {
  int64_t best = 0;
  for (int64_t i = 1; i < V; i++)
    if (l[i] > l[best]) best = i;
  if (sp.temperature <= 0.f || sp.top_k == 1) return int32_t(best);
  const float mx = l[best];
  std::vector<float> p(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; i++) p[i] = std::exp((l[i] - mx) / sp.temperature);
  float tau = 0.f;
  std::vector<float> sorted(p);
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  if (sp.top_k > 0 && sp.top_k < V) tau = sorted[size_t(sp.top_k - 1)];
  if (sp.top_p < 1.f) {
    double z = 0;
    for (float v : sorted)
      if (v >= tau) z += v;
    double cum = 0;
    for (float v : sorted) {
      if (v < tau) break;
      cum += v;
      if (cum >= double(sp.top_p) * z) {
        tau = std::max(tau, v);
        break;
      }
    }
  }
  double total = 0;
  for (float v : p)
    if (v >= tau) total += v;
  const double target = double(sample_uniform(sp.seed, step, row)) * total;
  double acc = 0;
  int64_t last = best;
  for (int64_t i = 0; i < V; i++) {
    if (p[i] < tau) continue;
    acc += p[i];
    last = i;
    if (acc > target) return int32_t(i);
  }
  return int32_t(last);
}

}  // namespace ssm

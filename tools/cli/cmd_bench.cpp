// `ssm bench -m DIR [-p 512] [-n 128] [-r 3]`: llama-bench-style table of prefill (ppN) and decode
// (tgN) tokens/s, mean ± stdev over r repetitions, on random token ids, CPU. Batch 1.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "cli.hpp"
#include "core/threadpool.hpp"
#include "ssm/model.hpp"

namespace ssm::cli {
namespace {

std::pair<double, double> mean_sd(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
}

}  // namespace

void register_bench(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("bench", "Benchmark prefill and decode speed (llama-bench style)");
  struct Opts { std::string dir; int64_t p = 512, n = 128; int r = 3; };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->dir, "Model directory")->required();
  sub->add_option("-p,--n-prompt", o->p, "Prompt tokens for the prefill test (0 = skip)")->capture_default_str();
  sub->add_option("-n,--n-gen", o->n, "Generated tokens for the decode test (0 = skip)")->capture_default_str();
  sub->add_option("-r,--repetitions", o->r, "Repetitions")->capture_default_str();
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (o->p < 0 || o->n < 0 || o->r < 1 || o->p > 1'000'000 || o->n > 1'000'000)
      throw Error("bench: -p and -n must be in [0, 1000000] and -r >= 1");
    using clock = std::chrono::steady_clock;
    auto m = Model::load(o->dir);
    std::mt19937 g(1);
    std::vector<int32_t> ids(static_cast<size_t>(std::max<int64_t>(o->p, 1)));
    for (auto& x : ids) x = int32_t(g() % uint32_t(m->vocab()));
    std::vector<float> logits(static_cast<size_t>(m->vocab()));
    std::vector<double> pp, tg;
    for (int rep = 0; rep <= o->r; rep++) {  // rep 0 is a warm-up
      State st = m->new_state();
      if (o->p > 0) {
        auto t0 = clock::now();
        m->prefill(ids.data(), o->p, st, logits.data(), false);
        double s = std::chrono::duration<double>(clock::now() - t0).count();
        if (rep) pp.push_back(double(o->p) / s);
      }
      if (o->n > 0) {
        State* sp = &st;
        int32_t tok = ids[0];
        auto t0 = clock::now();
        for (int64_t i = 0; i < o->n; i++) m->step(&tok, 1, &sp, logits.data());
        double s = std::chrono::duration<double>(clock::now() - t0).count();
        if (rep) tg.push_back(double(o->n) / s);
      }
    }
    const ModelConfig& c = m->config();
    ModelInfo mi = m->info();
    std::printf("| model | params | backend | threads | test | t/s |\n|---|---|---|---|---|---|\n");
    auto row = [&](const char* kind, int64_t n, const std::vector<double>& v) {
      auto [mu, sd] = mean_sd(v);
      std::printf("| %s %s | %.2f M | CPU | %d | %s%lld | %.2f ± %.2f |\n", c.model_type.c_str(),
                  mi.dtype_params.empty() ? "" : mi.dtype_params[0].first.c_str(), double(mi.params) / 1e6,
                  num_threads(), kind, (long long)n, mu, sd);
    };
    if (!pp.empty()) row("pp", o->p, pp);
    if (!tg.empty()) row("tg", o->n, tg);
    return 0;
  });
}

}  // namespace ssm::cli

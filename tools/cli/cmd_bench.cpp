// `ssm bench (-m DIR | --shape NAME) [-p 512,2048] [-n 128] [-b 1,16,64] [-r 3] [--device cuda] [--dtype bf16]`:
// llama-bench-style table of prefill (ppN, one sequence) and decode (tgN at batch b: b sequences, one
// token each per step, next token picked where the logits are) tokens/s, mean ± stdev over r
// repetitions after one warm-up, on random token ids. --shape builds random weights of a published
// shape (src/models/shapes.hpp), so no download is needed.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "cli.hpp"
#include "core/threadpool.hpp"
#include "models/shapes.hpp"
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

std::vector<int64_t> int_list(const std::string& s, const char* flag) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) {
    try {
      size_t used = 0;
      long long x = std::stoll(t, &used);
      if (used != t.size() || x < 0 || x > 1'000'000) throw 0;
      v.push_back(x);
    } catch (...) {
      throw Error(std::string(flag) + ": '" + t + "' is not an integer in [0, 1000000]");
    }
  }
  return v;
}

std::string cpu_name() {
  std::ifstream is("/proc/cpuinfo");
  std::string line;
  while (std::getline(is, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "CPU";
}

struct Opts {
  std::string dir, shape, p = "512", b = "1";
  int64_t n = 128;
  int r = 3;
  DeviceOpts dev;
};

int run_bench(const Opts& o) {
  if (o.dir.empty() == o.shape.empty()) throw Error("bench: give exactly one of -m DIR or --shape NAME");
  if (o.n < 0 || o.n > 1'000'000 || o.r < 1) throw Error("bench: -n must be in [0, 1000000] and -r >= 1");
  auto ps = int_list(o.p, "-p"), bs = int_list(o.b, "-b");
  int64_t maxb = 1;
  for (int64_t b : bs) maxb = std::max(maxb, b);
  LoadOptions lo = load_options(o.dev);
  lo.max_batch = std::max<int64_t>(maxb, 1);
  std::unique_ptr<Model> m;
  std::string name = o.shape.empty() ? o.dir : o.shape;
  if (!o.shape.empty()) {
    DType wt = DType::BF16;
    if (o.dev.dtype != "auto" && !parse_dtype(o.dev.dtype, &wt)) throw Error("--dtype '" + o.dev.dtype + "' is not bf16, f16 or f32");
    m = random_model(o.shape, wt, lo);
  } else {
    m = Model::load(o.dir, lo);
  }
  using clock = std::chrono::steady_clock;
  std::mt19937 g(1);
  const ModelConfig& c = m->config();
  ModelInfo mi = m->info();
  const bool gpu = o.dev.device != "cpu";
  std::string dt = mi.dtype_params.empty() ? "" : mi.dtype_params[0].first;
  if (gpu) dt = o.dev.dtype == "auto" ? "bf16" : o.dev.dtype;
  std::printf("model: %s (%s, %.2f M params), backend %s: %s, weights %s\n", name.c_str(), c.model_type.c_str(),
              double(mi.params) / 1e6, gpu ? "CUDA" : "CPU", gpu ? mi.device.c_str() : cpu_name().c_str(), dt.c_str());
  std::printf("state per sequence: %.2f MiB (%s)\n\n", double(mi.state_bytes) / 1048576.0, mi.state_dtype.c_str());
  std::printf("| model | params | backend | dtype | test | batch | t/s |\n|---|---|---|---|---|---|---|\n");
  auto row = [&](const std::string& test, int64_t batch, const std::vector<double>& v) {
    auto [mu, sd] = mean_sd(v);
    std::printf("| %s | %.2f M | %s | %s | %s | %lld | %.2f ± %.2f |\n", name.c_str(), double(mi.params) / 1e6,
                gpu ? "CUDA" : ("CPU x" + std::to_string(num_threads())).c_str(), dt.c_str(),
                test.c_str(), (long long)batch, mu, sd);
    std::fflush(stdout);
  };
  auto random_ids = [&](int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(std::max<int64_t>(n, 1)));
    for (auto& x : ids) x = int32_t(g() % uint32_t(c.vocab_config > 0 ? std::min(c.vocab_config, c.vocab) : c.vocab));
    return ids;
  };
  std::vector<float> logits(static_cast<size_t>(m->vocab()));
  for (int64_t p : ps) {
    if (p == 0) continue;
    auto ids = random_ids(p);
    std::vector<double> v;
    for (int rep = 0; rep <= o.r; rep++) {  // rep 0 is a warm-up
      State st = m->new_state();
      auto t0 = clock::now();
      m->prefill(ids.data(), p, st, logits.data(), false);
      double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (rep) v.push_back(double(p) / s);
    }
    row("pp" + std::to_string(p), 1, v);
  }
  for (int64_t b : bs) {
    if (b == 0 || o.n == 0) continue;
    std::vector<double> v;
    for (int rep = 0; rep <= o.r; rep++) {
      std::vector<State> st;
      std::vector<State*> sp;
      for (int64_t i = 0; i < b; i++) st.push_back(m->new_state());
      for (auto& s : st) sp.push_back(&s);
      auto tok = random_ids(b);
      std::vector<int32_t> next(tok.size());
      SampleParams greedy;
      auto t0 = clock::now();
      for (int64_t i = 0; i < o.n; i++) {
        m->step_sample(tok.data(), b, sp.data(), greedy, uint64_t(i), next.data());
        tok.swap(next);
      }
      double s = std::chrono::duration<double>(clock::now() - t0).count();
      if (rep) v.push_back(double(b * o.n) / s);
    }
    row("tg" + std::to_string(o.n), b, v);
  }
  if (gpu) std::printf("\nGPU memory held by the model: %.1f MiB\n", double(m->info().device_bytes) / 1048576.0);
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("bench", "Benchmark prefill and decode speed (llama-bench style)");
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->dir, "Model directory");
  sub->add_option("--shape", o->shape, "Random weights of a published shape (mamba-130m ... mamba-2.8b, mamba2-130m ... "
                                       "mamba2-2.7b, falcon-mamba-7b)");
  sub->add_option("-p,--n-prompt", o->p, "Prompt lengths for the prefill test, comma-separated (0 = skip)")->capture_default_str();
  sub->add_option("-n,--n-gen", o->n, "Generated tokens per sequence for the decode test (0 = skip)")->capture_default_str();
  sub->add_option("-b,--batch", o->b, "Decode batch sizes, comma-separated")->capture_default_str();
  sub->add_option("-r,--repetitions", o->r, "Repetitions")->capture_default_str();
  add_device_options(sub, o->dev);
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    return run_bench(*o);
  });
}

}  // namespace ssm::cli

// Tokenizer encode throughput (MB/s) of ssm::Tokenizer, single thread, on two ~1 MB texts:
//   multilingual: tests/data/tokenizers/corpus.json's texts joined by "\n", repeated to >= 1 MB
//   prose:        tests/data/default_model_heldout.txt repeated to >= 1 MB
// for every tokenizer directory given. `node scripts/tokenizer_reference.mjs --bench` times HF
// `tokenizers` on exactly the same strings; scripts/bench_tokenizer.sh runs both and prints ratios.
//   build/bin/bench_tokenizer tests/data/tokenizers/*/
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"

namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw ssm::Error(p + ": cannot open (run from the repository root)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string repeat_to_1mb(const std::string& s) {
  std::string big;
  const size_t k = size_t(std::ceil(1e6 / double(s.size())));
  for (size_t i = 0; i < k; i++) big += s;
  return big;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string joined;
    bool first = true;
    const auto corpus = nlohmann::json::parse(slurp("tests/data/tokenizers/corpus.json"));
    for (const auto& t : corpus["texts"]) {
      joined += (first ? "" : "\n") + t.get<std::string>();
      first = false;
    }
    const std::pair<const char*, std::string> texts[] = {
        {"multilingual", repeat_to_1mb(joined)},
        {"prose", repeat_to_1mb(slurp("tests/data/default_model_heldout.txt"))}};
    for (int a = 1; a < argc; ++a) {
      std::string dir = argv[a];
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      auto tok = ssm::Tokenizer::load(dir + "/tokenizer.json");
      for (const auto& [name, big] : texts) {
        size_t n = tok->encode(big).size();  // warm-up (fills the word cache, as HF's does)
        const int reps = 3;
        auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < reps; ++r) n = tok->encode(big).size();
        double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
        std::printf("%s\t%s\t%.2f MB/s\t%zu tokens\t%zu bytes\n", dir.c_str(), name, big.size() / 1e6 / sec, n,
                    big.size());
      }
    }
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}

// Greedy continuations: ssm's generate() (prefill once, then one recurrent step per token) must
// reproduce transformers' generate(do_sample=False) token for token, on every fixture (meta.json,
// 12 new tokens) and on the bundled default model (models/default/reference.json, 40 new tokens).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/generate.hpp"

using namespace ssm;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
std::vector<int32_t> greedy(const std::string& dir, const std::vector<int32_t>& prompt, int64_t n) {
  auto m = Model::load(dir);
  State st = m->new_state();
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  return generate(*m, st, prompt, o, [](int32_t) { return true; }).tokens;
}
}  // namespace

TEST(Greedy, FixturesMatchTransformersGenerate) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(SSM_FIXTURE_DIR)) {
    std::ifstream is(e.path() / "meta.json");
    if (!is) continue;
    json meta = json::parse(is);
    const json& g = meta["greedy"];
    if (!g.contains("output")) continue;
    auto out = greedy(e.path().string(), g["prompt"].get<std::vector<int32_t>>(), g["new_tokens"].get<int64_t>());
    EXPECT_EQ(out, g["output"].get<std::vector<int32_t>>()) << e.path();
    checked++;
  }
  EXPECT_GE(checked, 7);
}

TEST(Greedy, BundledModelMatchesTransformersGenerate) {
  const std::string dir = std::string(SSM_SOURCE_DIR) + "/models/default";
  std::ifstream is(dir + "/reference.json");
  ASSERT_TRUE(is) << "models/default/reference.json missing";
  json ref = json::parse(is);
  ASSERT_GE(ref["greedy"].size(), 1u);
  for (const auto& g : ref["greedy"]) {
    auto want = g["output_ids"].get<std::vector<int32_t>>();
    auto out = greedy(dir, g["prompt_ids"].get<std::vector<int32_t>>(), int64_t(want.size()));
    EXPECT_EQ(out, want) << g["prompt"];
  }
}

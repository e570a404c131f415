// `perplexity` on the bundled model and its held-out text must agree with transformers (computed by
// scripts/default_model/train.py with the same windows) to 1e-3 relative, over the same number of
// scored tokens — which also checks that our BPE encodes the 190 KB text exactly as HF tokenizers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loader/checkpoint.hpp"
#include "loader/convert.hpp"
#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include "runtime/tokenizer.hpp"
#include "runtime/perplexity.hpp"

using namespace ssm;

TEST(Perplexity, BundledModelMatchesTransformers) {
  const std::string dir = std::string(SSM_SOURCE_DIR) + "/models/default";
  std::ifstream is(dir + "/reference.json");
  auto ref = nlohmann::json::parse(is);
  auto m = Model::load(dir);
  auto tok = Tokenizer::load(dir + "/tokenizer.json");
  auto ids = tok->encode(read_text_file(std::string(SSM_TEST_DATA_DIR) + "/default_model_heldout.txt"));
  auto r = perplexity(*m, ids, 512);
  EXPECT_EQ(r.scored, ref["heldout_tokens_scored"].get<int64_t>());
  const double want = ref["heldout_ppl_ctx512"].get<double>();
  EXPECT_LT(std::fabs(r.ppl - want) / want, 1e-3) << r.ppl << " vs " << want;
  EXPECT_THROW(perplexity(*m, ids, 1), Error);
}

// q8 weights (`ssm convert --to q8`) on the bundled model: the held-out perplexity may move by at
// most 0.5% relative to the f32 model's (measured: 92.1553 -> 92.1661, +0.012%).
TEST(Perplexity, BundledModelQ8StaysClose) {
  const std::string dir = std::string(SSM_SOURCE_DIR) + "/models/default";
  const std::string out = std::filesystem::temp_directory_path() / ("ssm_q8_default_" + std::to_string(::getpid()));
  auto r = convert_checkpoint(dir, "q8", out);
  EXPECT_GT(r.quantized, 0);
  auto m = Model::load(out);
  auto tok = Tokenizer::load(out + "/tokenizer.json");
  auto ids = tok->encode(read_text_file(std::string(SSM_TEST_DATA_DIR) + "/default_model_heldout.txt"));
  auto q = perplexity(*m, ids, 512);
  std::ifstream is(dir + "/reference.json");
  const double want = nlohmann::json::parse(is)["heldout_ppl_ctx512"].get<double>();
  std::printf("[ q8       ] bundled model held-out perplexity %.4f (f32 reference %.4f)\n", q.ppl, want);
  EXPECT_LT(std::fabs(q.ppl - want) / want, 5e-3);
  std::filesystem::remove_all(out);
}

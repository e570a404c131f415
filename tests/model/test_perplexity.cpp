// `perplexity` on the bundled model and its held-out text must agree with transformers (computed by
// scripts/default_model/train.py with the same windows) to 1e-3 relative, over the same number of
// scored tokens — which also checks that our BPE encodes the 190 KB text exactly as HF tokenizers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loader/checkpoint.hpp"
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

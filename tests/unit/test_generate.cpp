// Generation loop on a tiny random model: greedy generate() equals argmax over a fresh prefill of the
// growing sequence (so the recurrent decode path is exact), EOS and max tokens end it, and the
// stop-string filter streams exactly the text before the first stop string.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/generate.hpp"
#include "support/tiny_model.hpp"

using namespace ssm;

TEST(Generate, GreedyDecodeEqualsRePrefill) {
  std::string dir = test::temp_dir("gen");
  test::TinySpec s;
  s.model_type = "mamba2";
  test::write_tiny_model(dir, s);
  auto m = Model::load(dir);
  std::vector<int32_t> prompt = test::random_ids(6, m->vocab(), 3);
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.sampling.temperature = 0;
  State st = m->new_state();
  auto r = generate(*m, st, prompt, o, [](int32_t) { return true; });
  ASSERT_EQ(r.tokens.size(), 10u);
  EXPECT_EQ(r.finish_reason, "length");
  std::vector<int32_t> seq = prompt;
  std::vector<float> lg(static_cast<size_t>(m->vocab()));
  for (int32_t t : r.tokens) {
    State fresh = m->new_state();
    m->prefill(seq.data(), int64_t(seq.size()), fresh, lg.data(), false);
    EXPECT_EQ(int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin()), t);
    seq.push_back(t);
  }
  EXPECT_EQ(st.pos, int64_t(prompt.size() + r.tokens.size() - 1));
  // The first generated token as EOS ends generation at once.
  State st2 = m->new_state();
  o.eos_ids = {r.tokens[0]};
  auto r2 = generate(*m, st2, prompt, o, [](int32_t) { return true; });
  EXPECT_TRUE(r2.tokens.empty());
  EXPECT_EQ(r2.finish_reason, "stop");
  o.max_new_tokens = -1;
  EXPECT_THROW(generate(*m, st2, prompt, o, [](int32_t) { return true; }), Error);
}

TEST(Generate, StopFilterHoldsBackPrefixes) {
  StopFilter f({"</s>", "\n\nUser:"});
  std::string out;
  for (std::string piece : {"Hello", " wor", "ld<", "/", "x", "\n", "\nUs", "er", ":", "more"}) out += f.push(piece);
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(out, "Hello world</x");
  StopFilter g({"STOP"});
  std::string o2 = g.push("abcST");
  EXPECT_EQ(o2, "abc");
  o2 += g.push("OX");
  EXPECT_FALSE(g.stopped());
  o2 += g.flush();
  EXPECT_EQ(o2, "abcSTOX");
}

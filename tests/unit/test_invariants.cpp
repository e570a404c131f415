// SSM invariants on random tiny models of each architecture (no reference numbers needed):
//   prefill(L) == step×L == chunked(N) for logits and states; prefill(L) then step == prefill(L+1);
//   ragged batches equal the sequences run alone; the model on CPU kernels equals the model on the
//   scalar reference kernels; bad token ids and mismatched states are errors.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops.hpp"
#include "ssm/model.hpp"
#include "support/tiny_model.hpp"

using namespace ssm;

namespace {

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<float> run_chunked(Model& m, const std::vector<int32_t>& ids, int64_t chunk, State& st) {
  const int64_t V = m.vocab(), L = int64_t(ids.size());
  std::vector<float> out(static_cast<size_t>(L * V));
  for (int64_t p = 0; p < L; p += chunk) {
    int64_t n = std::min(chunk, L - p);
    m.prefill(ids.data() + p, n, st, out.data() + p * V, true);
  }
  return out;
}

test::TinySpec spec(const std::string& type) {
  test::TinySpec s;
  s.model_type = type;
  if (type == "mamba2") s.d_conv = 3;
  return s;
}

class Invariants : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Invariants, PrefillStepChunkedAgree) {
  std::string dir = test::temp_dir("inv");
  test::write_tiny_model(dir, spec(GetParam()));
  auto m = Model::load(dir);
  auto ids = test::random_ids(29, m->vocab(), 7);
  State a = m->new_state(), b = m->new_state(), c = m->new_state();
  auto full = run_chunked(*m, ids, 29, a);
  auto step = run_chunked(*m, ids, 1, b);
  auto chunk = run_chunked(*m, ids, 5, c);
  // Modes sum in different orders (GEMV vs GEMM, chunked vs sequential scan): the bound of
  // docs/numerics.md, 1e-5 relative to the largest logit.
  float big = 1.f;
  for (float v : full) big = std::max(big, std::fabs(v));
  EXPECT_LT(max_abs_diff(step, full), 1e-5f * big);
  EXPECT_LT(max_abs_diff(chunk, full), 1e-5f * big);
  EXPECT_LT(max_abs_diff(b.data, a.data), 1e-5f);
  EXPECT_LT(max_abs_diff(c.data, a.data), 1e-5f);
  EXPECT_EQ(a.pos, 29);
  EXPECT_EQ(b.pos, 29);
}

TEST_P(Invariants, PrefillThenStepEqualsLongerPrefill) {
  std::string dir = test::temp_dir("inv2");
  test::write_tiny_model(dir, spec(GetParam()));
  auto m = Model::load(dir);
  const int64_t V = m->vocab();
  auto ids = test::random_ids(20, V, 9);
  State s1 = m->new_state(), s2 = m->new_state();
  std::vector<float> l1(static_cast<size_t>(V)), l2(static_cast<size_t>(20 * V));
  m->prefill(ids.data(), 19, s1, nullptr, false);
  State* sp = &s1;
  m->step(&ids[19], 1, &sp, l1.data());
  m->prefill(ids.data(), 20, s2, l2.data(), true);
  std::vector<float> last(l2.end() - V, l2.end());
  EXPECT_LT(max_abs_diff(l1, last), 1e-5f);
  EXPECT_LT(max_abs_diff(s1.data, s2.data), 1e-5f);
}

TEST_P(Invariants, RaggedBatchEqualsSingles) {
  std::string dir = test::temp_dir("inv3");
  test::write_tiny_model(dir, spec(GetParam()));
  auto m = Model::load(dir);
  const int64_t V = m->vocab();
  std::vector<std::vector<int32_t>> seqs = {test::random_ids(17, V, 1), test::random_ids(1, V, 2), test::random_ids(9, V, 3)};
  std::vector<State> st;
  std::vector<std::vector<float>> out;
  std::vector<SeqRequest> reqs;
  for (auto& s : seqs) st.push_back(m->new_state()), out.emplace_back(s.size() * size_t(V));
  for (size_t i = 0; i < seqs.size(); i++) reqs.push_back({seqs[i].data(), int64_t(seqs[i].size()), &st[i], out[i].data(), true});
  m->max_block_tokens = 8;  // also forces blocks that split sequences
  m->forward(reqs);
  for (size_t i = 0; i < seqs.size(); i++) {
    State s = m->new_state();
    auto alone = run_chunked(*m, seqs[i], int64_t(seqs[i].size()), s);
    EXPECT_LT(max_abs_diff(out[i], alone), 1e-5f) << "sequence " << i;
    EXPECT_LT(max_abs_diff(st[i].data, s.data), 1e-5f);
  }
}

TEST_P(Invariants, CpuKernelsMatchReferenceKernels) {
  std::string dir = test::temp_dir("inv4");
  auto sp = spec(GetParam());
  sp.dtype = DType::BF16;
  test::write_tiny_model(dir, sp);
  auto m = Model::load(dir);
  auto ids = test::random_ids(23, m->vocab(), 5);
  State a = m->new_state(), b = m->new_state();
  auto fast = run_chunked(*m, ids, 23, a);
  ops::set_impl(ops::Impl::Ref);
  auto ref = run_chunked(*m, ids, 23, b);
  ops::set_impl(ops::Impl::Cpu);
  EXPECT_LT(max_abs_diff(fast, ref), 1e-4f);
}

TEST_P(Invariants, BadTokensAndStatesAreErrors) {
  std::string dir = test::temp_dir("inv5");
  test::write_tiny_model(dir, spec(GetParam()));
  auto m = Model::load(dir);
  State s = m->new_state();
  int32_t bad[2] = {1, int32_t(m->vocab())};
  try {
    m->prefill(bad, 2, s, nullptr, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos);
  }
  State wrong;
  EXPECT_THROW(m->prefill(bad, 1, wrong, nullptr, false), Error);
}

INSTANTIATE_TEST_SUITE_P(Archs, Invariants, ::testing::Values("mamba", "falcon_mamba", "mamba2"));

TEST(ModelLoad, ShapeMismatchNamesTensorAndConfig) {
  std::string dir = test::temp_dir("bad");
  test::TinySpec s;
  test::write_tiny_model(dir, s);
  // Claim a larger state size than the weights have.
  std::string cfg = R"({"model_type":"mamba","hidden_size":16,"num_hidden_layers":2,"vocab_size":37,"state_size":7,
    "conv_kernel":4,"intermediate_size":32,"time_step_rank":3})";
  FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
  std::fputs(cfg.c_str(), f);
  std::fclose(f);
  try {
    Model::load(dir);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("backbone.layers.0.mixer.x_proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("state_size=7"), std::string::npos) << m;
  }
}

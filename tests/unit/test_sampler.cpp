// Sampler: greedy, determinism under a seed, the support of top-k / top-p / min-p, penalty
// arithmetic on hand-computed values, and parameter validation.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "runtime/sampler.hpp"
#include "ssm/error.hpp"

using namespace ssm;

namespace {
std::vector<float> logits5() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.5f}; }
std::set<int32_t> support(SamplingParams p, int draws = 2000) {
  std::set<int32_t> s;
  Sampler sm(p);
  for (int i = 0; i < draws; i++) {
    auto l = logits5();
    s.insert(sm.sample(l.data(), 5));
  }
  return s;
}
}  // namespace

TEST(Sampler, GreedyIsArgmax) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  auto l = logits5();
  EXPECT_EQ(s.sample(l.data(), 5), 1);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingParams p;
  p.top_k = 0, p.top_p = 1, p.min_p = 0, p.temperature = 1.5f, p.seed = 42;
  Sampler a(p), b(p);
  int differ = 0;
  std::vector<int32_t> da, db;
  for (int i = 0; i < 200; i++) {
    auto l1 = logits5(), l2 = logits5();
    da.push_back(a.sample(l1.data(), 5));
    db.push_back(b.sample(l2.data(), 5));
  }
  EXPECT_EQ(da, db);
  p.seed = 43;
  Sampler c(p);
  for (int i = 0; i < 200; i++) {
    auto l = logits5();
    differ += c.sample(l.data(), 5) != da[size_t(i)];
  }
  EXPECT_GT(differ, 0);
}

TEST(Sampler, TruncationSupports) {
  SamplingParams p;
  p.temperature = 1, p.top_p = 1, p.min_p = 0;
  p.top_k = 2;
  EXPECT_EQ(support(p), (std::set<int32_t>{1, 2}));
  p.top_k = 0;
  EXPECT_EQ(support(p).size(), 5u);
  // softmax(1, 3, 2.5, -1, 0.5) = (.073, .543, .329, .010, .045): top_p 0.5 keeps token 1 alone,
  // top_p 0.6 needs tokens 1 and 2.
  p.top_p = 0.5f;
  EXPECT_EQ(support(p), (std::set<int32_t>{1}));
  p.top_p = 0.6f;
  EXPECT_EQ(support(p), (std::set<int32_t>{1, 2}));
  // min_p 0.5: p(2)/p(1) = e^-0.5 = 0.61 stays, p(0)/p(1) = e^-2 = 0.14 goes.
  p.top_p = 1, p.min_p = 0.5f;
  EXPECT_EQ(support(p), (std::set<int32_t>{1, 2}));
}

TEST(Sampler, PenaltiesArithmetic) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p);
  s.accept(1);
  s.accept(1);
  s.accept(3);
  auto l = logits5();
  s.sample(l.data(), 5);
  EXPECT_FLOAT_EQ(l[1], 3.0f / 2 - 0.5f - 0.25f * 2);   // 0.5
  EXPECT_FLOAT_EQ(l[3], -1.0f * 2 - 0.5f - 0.25f);      // -2.75
  EXPECT_FLOAT_EQ(l[2], 2.5f);
}

TEST(Sampler, RejectsBadParams) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.top_k = -3;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.min_p = 2;
  EXPECT_THROW(Sampler{p}, Error);
}

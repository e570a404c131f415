// Backend-neutral Model API on the CPU: LoadOptions, state fork/save/restore, the shared sampling
// rule, --device errors, and the published-shape registry used by `ssm bench --shape`.
#include <gtest/gtest.h>

#include <cmath>

#include "models/sample.hpp"
#include "models/shapes.hpp"
#include "ssm/model.hpp"
#include "support/tiny_model.hpp"

using namespace ssm;

TEST(ModelApi, CpuStateForkSaveRestore) {
  std::string dir = test::temp_dir("api");
  test::write_tiny_model(dir, test::TinySpec{});
  auto m = Model::load(dir, LoadOptions{});
  auto ids = test::random_ids(9, m->vocab(), 3);
  State a = m->new_state();
  m->prefill(ids.data(), 9, a, nullptr, false);
  std::vector<float> saved(size_t(m->state_floats()));
  m->state_to_host(a, saved.data());
  State b, c;
  m->state_from_host(saved.data(), b);
  m->copy_state(a, c);
  EXPECT_EQ(c.pos, 9);
  std::vector<float> la(size_t(m->vocab())), lb(la.size()), lc(la.size());
  State* pa = &a;
  State* pb = &b;
  State* pc = &c;
  m->step(ids.data(), 1, &pa, la.data());
  m->step(ids.data(), 1, &pb, lb.data());
  m->step(ids.data(), 1, &pc, lc.data());
  EXPECT_EQ(la, lb);
  EXPECT_EQ(la, lc);
  State wrong;
  EXPECT_THROW(m->state_to_host(wrong, saved.data()), Error);
}

TEST(ModelApi, BadDeviceIsAnError) {
  std::string dir = test::temp_dir("dev");
  test::write_tiny_model(dir, test::TinySpec{});
  LoadOptions o;
  o.device = "tpu";
  EXPECT_THROW(Model::load(dir, o), Error);
  o.device = "cpu";
  o.state_dtype = "bf16";  // a GPU option: the error says so
  try {
    Model::load(dir, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
  o.state_dtype = "f32";
#ifndef SSM_HAVE_CUDA
  o.device = "cuda";
  try {
    Model::load(dir, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA backend"), std::string::npos) << e.what();
  }
#endif
}

TEST(ModelApi, SamplerRule) {
  std::vector<float> l = {0.f, 3.f, 1.f, 3.f, -2.f};
  EXPECT_EQ(sample_logits(l.data(), 5, {}, 0, 0), 1);  // lowest index among tied maxima
  SampleParams sp{1.f, 2, 1.f, 7};
  for (uint64_t s = 0; s < 50; s++) {
    int32_t t = sample_logits(l.data(), 5, sp, s, 0);
    EXPECT_TRUE(t == 1 || t == 3);  // top-2 keeps the two maxima only
  }
  SampleParams pp{1.f, 0, 0.5f, 7};
  for (uint64_t s = 0; s < 50; s++) {
    int32_t t = sample_logits(l.data(), 5, pp, s, 1);
    EXPECT_TRUE(t == 1 || t == 3);  // the two maxima carry > 50% of the mass
  }
  float u = sample_uniform(1, 2, 3);
  EXPECT_GE(u, 0.f);
  EXPECT_LT(u, 1.f);
}

TEST(Shapes, ParamCountsMatchPublished) {
  // Published sizes (ecosystem.md): mamba-130m 129M, 2.8b 2.77B; mamba2-2.7b 2.70B; falcon-mamba-7b 7.27B.
  struct Want { const char* name; double params; };
  for (Want w : {Want{"mamba-130m", 129e6}, Want{"mamba-370m", 372e6}, Want{"mamba-1.4b", 1.37e9}, Want{"mamba-2.8b", 2.77e9},
                 Want{"mamba2-130m", 129e6}, Want{"mamba2-2.7b", 2.70e9}, Want{"falcon-mamba-7b", 7.27e9}}) {
    double got = double(config_params(shape_config(w.name)));
    EXPECT_NEAR(got / w.params, 1.0, 0.02) << w.name << " " << got;
  }
  EXPECT_EQ(shape_names().size(), 11u);
  EXPECT_THROW(shape_config("mamba-9b"), Error);
}

TEST(Shapes, RandomModelIsSane) {
  auto m = random_model("mamba2-130m", DType::BF16, LoadOptions{});
  EXPECT_EQ(m->config().n_heads, 24);
  EXPECT_NEAR(double(m->info().params), double(config_params(m->config())), 1.0);
  auto ids = test::random_ids(8, m->vocab(), 1);
  State s = m->new_state();
  std::vector<float> logits(size_t(m->vocab()));
  m->prefill(ids.data(), 8, s, logits.data(), false);
  float mx = 0.f;
  for (float v : logits) {
    ASSERT_TRUE(std::isfinite(v));
    mx = std::max(mx, std::fabs(v));
  }
  EXPECT_GT(mx, 1e-3f);
  EXPECT_LT(mx, 1e3f);
}

// Whole-model parity on the GPU: every fixture (tiny transformers checkpoints with fp32 reference
// logits) on CUDA in f32 (1e-4, like the CPU) and bf16 (tolerance from docs/numerics.md, max error
// printed), in prefill, step-by-step and chunked modes; greedy continuations of the bundled model
// equal to the CPU's; state fork/save/restore; batched decode equal to one-at-a-time decode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/npy.hpp"
#include "gpu/gpu_util.hpp"
#include "models/shapes.hpp"
#include "runtime/generate.hpp"
#include "ssm/model.hpp"

using namespace ssm;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> fixture_dirs() {
  std::vector<std::string> v;
  if (fs::is_directory(SSM_FIXTURE_DIR))
    for (const auto& e : fs::directory_iterator(SSM_FIXTURE_DIR))
      if (fs::exists(e.path() / "logits.npy")) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::vector<int32_t>> read_ids(const std::string& path) {
  std::ifstream is(path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(is, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> v;
    int32_t x;
    while (ls >> x) v.push_back(x);
    if (!v.empty()) out.push_back(v);
  }
  return out;
}

std::vector<float> run(Model& m, const std::vector<std::vector<int32_t>>& seqs, int64_t Lmax, int64_t chunk) {
  const int64_t V = m.vocab(), S = int64_t(seqs.size());
  std::vector<float> out(static_cast<size_t>(S * Lmax * V), NAN);
  std::vector<State> st;
  for (int64_t s = 0; s < S; s++) st.push_back(m.new_state());
  for (int64_t p = 0; p < Lmax; p += chunk ? chunk : Lmax) {
    std::vector<SeqRequest> reqs;
    for (int64_t s = 0; s < S; s++) {
      int64_t n = int64_t(seqs[s].size());
      if (p >= n) continue;
      reqs.push_back({seqs[s].data() + p, chunk ? std::min(chunk, n - p) : n, &st[s], out.data() + (s * Lmax + p) * V, true});
    }
    m.forward(reqs);
  }
  return out;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    if (!std::isnan(a[i])) m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

LoadOptions cuda(const std::string& dtype) {
  LoadOptions o;
  o.device = "cuda";
  o.dtype = dtype;
  return o;
}

class CudaFixture : public ::testing::TestWithParam<std::string> {};

// Weights f32 / state f32 (1e-4, like the CPU), weights bf16 and, with f32 weights, bf16 state
// storage (each decode step rounds the state to bf16: ~2^-9 relative per step). The 2% bounds are
// docs/numerics.md's, set from the errors printed here.
TEST_P(CudaFixture, MatchesTransformers) {
  SKIP_WITHOUT_GPU();
  const std::string dir = std::string(SSM_FIXTURE_DIR) + "/" + GetParam();
  auto ref = read_npy(dir + "/logits.npy");
  auto seqs = read_ids(dir + "/ids.txt");
  float scale = 1.f;
  for (float v : ref.data)
    if (!std::isnan(v)) scale = std::max(scale, std::fabs(v));
  struct Setting { const char *weights, *state, *label; float tol; };
  for (const Setting& c : {Setting{"f32", "f32", "f32", 1e-4f}, Setting{"bf16", "f32", "bf16", 2e-2f * scale},
                           Setting{"f32", "bf16", "state bf16", 2e-2f * scale}}) {
    LoadOptions o = cuda(c.weights);
    o.state_dtype = c.state;
    auto m = Model::load(dir, o);
    EXPECT_EQ(m->info().state_dtype, c.state);
    for (int64_t chunk : {int64_t(0), int64_t(1), int64_t(5)}) {
      const float err = max_abs_diff(run(*m, seqs, ref.shape[1], chunk), ref.data);
      std::printf("[ gpu parity ] %-22s %-10s chunk %lld: max abs err %.3g (logit scale %.3g, tol %.3g)\n", GetParam().c_str(),
                  c.label, (long long)chunk, err, scale, c.tol);
      EXPECT_LT(err, c.tol) << c.label << " chunk " << chunk;
    }
    // Batches > 8 decode through other kernels (cuBLASLt GEMMs whose inputs their producers write in
    // the weight dtype, the Mamba-1 rows kernel): the fixture's sequences repeated to 9 or more rows,
    // all stepped token by token together.
    std::vector<std::vector<int32_t>> many;
    std::vector<float> many_ref;
    const size_t per_seq = static_cast<size_t>(ref.shape[1] * ref.shape[2]);
    while (many.size() < 9)
      for (size_t i = 0; i < seqs.size(); i++) {
        many.push_back(seqs[i]);
        many_ref.insert(many_ref.end(), ref.data.begin() + i * per_seq, ref.data.begin() + (i + 1) * per_seq);
      }
    const float err = max_abs_diff(run(*m, many, ref.shape[1], 1), many_ref);
    std::printf("[ gpu parity ] %-22s %-10s batch %zu step: max abs err %.3g (tol %.3g)\n", GetParam().c_str(), c.label,
                many.size(), err, c.tol);
    EXPECT_LT(err, c.tol) << c.label << " batch " << many.size();
  }
}

INSTANTIATE_TEST_SUITE_P(All, CudaFixture, ::testing::ValuesIn(fixture_dirs()), [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaFixture);

std::vector<int32_t> greedy(Model& m, const std::vector<int32_t>& prompt, int64_t n) {
  State st = m.new_state();
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  return generate(m, st, prompt, o, [](int32_t) { return true; }).tokens;
}

TEST(CudaModel, BundledModelGreedyEqualsCpu) {
  SKIP_WITHOUT_GPU();
  const std::string dir = std::string(SSM_SOURCE_DIR) + "/models/default";
  std::ifstream is(dir + "/reference.json");
  auto ref = nlohmann::json::parse(is);
  auto cpu = Model::load(dir);
  auto g32 = Model::load(dir, cuda("f32"));
  auto g16 = Model::load(dir, cuda("bf16"));
  for (const auto& g : ref["greedy"]) {
    auto prompt = g["prompt_ids"].get<std::vector<int32_t>>();
    auto want = greedy(*cpu, prompt, 40);
    EXPECT_EQ(greedy(*g32, prompt, 40), want) << g["prompt"];
    auto b = greedy(*g16, prompt, 40);
    size_t same = 0;
    while (same < b.size() && b[same] == want[same]) same++;
    std::printf("[ gpu greedy ] bf16 agrees with CPU f32 for %zu of %zu tokens\n", same, want.size());
  }
}

TEST(CudaModel, BatchedDecodeEqualsSingleAndStatesRoundTrip) {
  SKIP_WITHOUT_GPU();
  for (const char* sd : {"f32", "bf16"})
  for (const char* fx : {"mamba1_bias_tied", "mamba2_groups", "falcon_mamba_sharded"}) {
    LoadOptions o = cuda("f32");
    o.state_dtype = sd;
    auto m = Model::load(std::string(SSM_FIXTURE_DIR) + "/" + fx, o);
    const int64_t V = m->vocab(), B = 5;
    std::vector<State> st;
    std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7};
    for (int64_t b = 0; b < B; b++) {
      st.push_back(m->new_state());
      prompt[0] = int32_t(b + 1);
      m->prefill(prompt.data(), 7, st.back(), nullptr, false);
    }
    // Fork sequence 0 through the host and through copy_state; all three must then agree.
    std::vector<float> saved(static_cast<size_t>(m->state_floats()));
    m->state_to_host(st[0], saved.data());
    State restored, forked;
    m->state_from_host(saved.data(), restored);
    m->copy_state(st[0], forked);
    std::vector<int32_t> tok = {9, 8, 7, 6, 5};
    std::vector<State*> sp;
    for (auto& s : st) sp.push_back(&s);
    std::vector<float> batched(static_cast<size_t>(B * V)), single(static_cast<size_t>(V)), other(static_cast<size_t>(V));
    m->step(tok.data(), B, sp.data(), batched.data());
    State* r = &restored;
    m->step(tok.data(), 1, &r, single.data());
    State* f = &forked;
    m->step(tok.data(), 1, &f, other.data());
    EXPECT_LT(max_abs_diff(std::vector<float>(batched.begin(), batched.begin() + V), single), 1e-5f) << fx << " state " << sd;
    EXPECT_EQ(single, other) << fx << " state " << sd;
    EXPECT_EQ(st[0].pos, 8);
  }
}

TEST(CudaModel, ErrorsAreClear) {
  SKIP_WITHOUT_GPU();
  const std::string dir = std::string(SSM_FIXTURE_DIR) + "/mamba2_groups";
  LoadOptions o = cuda("bf16");
  o.max_batch = 2;
  auto m = Model::load(dir, o);
  State a = m->new_state(), b = m->new_state();
  EXPECT_THROW(m->new_state(), Error);  // all slots in use
  { State tmp = std::move(b); }
  EXPECT_NO_THROW(m->new_state());  // released slot is reused
  auto cpu = Model::load(dir);
  State cs = cpu->new_state();
  int32_t t = 1;
  EXPECT_THROW(m->prefill(&t, 1, cs, nullptr, false), Error);
  o.device = "cuda:99";
  EXPECT_THROW(Model::load(dir, o), Error);
  o.device = "cuda";
  o.dtype = "int4";
  EXPECT_THROW(Model::load(dir, o), Error);
  o.dtype = "bf16";
  o.state_dtype = "f16";
  EXPECT_THROW(Model::load(dir, o), Error);
}

// Out of GPU memory is an ssm::Error that says so, for the weights and for the state pool, and the
// process can go on: most of the free memory is held by the test, then a model is loaded into the rest.
TEST(CudaModel, OutOfMemoryIsAClearError) {
  SKIP_WITHOUT_GPU();
  auto is_oom = [](const Error& e) { return std::string(e.what()).find("GPU out of memory") != std::string::npos; };
  std::vector<void*> hog;
  auto hold_all_but = [&](size_t keep) {
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    const size_t chunk = size_t(256) << 20;
    while (fr > keep + chunk) {
      void* p = nullptr;
      if (cudaMalloc(&p, chunk) != cudaSuccess) break;
      hog.push_back(p);
      cudaMemGetInfo(&fr, &tot);
    }
    cudaGetLastError();
  };
  auto release = [&] {
    for (void* p : hog) cudaFree(p);
    hog.clear();
  };
  LoadOptions o = cuda("bf16");
  o.max_batch = 4096;
  hold_all_but(size_t(100) << 20);  // mamba-130m in bf16 needs ~260 MiB of weights
  bool threw = false;
  try {
    random_model("mamba-130m", DType::BF16, o);
  } catch (const Error& e) {
    threw = true;
    EXPECT_TRUE(is_oom(e)) << e.what();
  }
  EXPECT_TRUE(threw);
  release();
  // Weights fit, but growing the state pool towards 4096 sequences (~2.4 GiB at mamba-130m) does not.
  auto m = random_model("mamba-130m", DType::BF16, o);
  hold_all_but(size_t(64) << 20);
  std::vector<State> states;
  threw = false;
  try {
    for (int i = 0; i < 4096; i++) states.push_back(m->new_state());
  } catch (const Error& e) {
    threw = true;
    EXPECT_TRUE(is_oom(e)) << e.what();
  }
  release();
  EXPECT_TRUE(threw);
  // The model still works after the failed growth.
  int32_t t = 3;
  std::vector<float> logits(static_cast<size_t>(m->config().vocab));
  State s = states.empty() ? m->new_state() : std::move(states[0]);
  EXPECT_NO_THROW(m->prefill(&t, 1, s, logits.data(), false));
}

TEST(CudaModel, StepSampleGreedyIsArgmax) {
  SKIP_WITHOUT_GPU();
  auto m = Model::load(std::string(SSM_FIXTURE_DIR) + "/mamba1_bf16_untied", cuda("bf16"));
  const int64_t V = m->vocab();
  State a = m->new_state(), b = m->new_state();
  std::vector<int32_t> p = {3, 1, 4, 1, 5};
  m->prefill(p.data(), 5, a, nullptr, false);
  m->copy_state(a, b);
  int32_t tok = 2, next = -1;
  std::vector<float> logits(static_cast<size_t>(V));
  State* sa = &a;
  State* sb = &b;
  m->step(&tok, 1, &sa, logits.data());
  m->step_sample(&tok, 1, &sb, SampleParams{}, 0, &next);
  const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<float> sorted = logits;
  std::sort(sorted.rbegin(), sorted.rend());
  ASSERT_GE(next, 0);
  ASSERT_LT(next, V);
  EXPECT_EQ(next, best) << "step's argmax " << best << " (logit " << logits[size_t(best)] << "), step_sample chose "
                        << next << " (logit " << logits[size_t(next)] << "); top two " << sorted[0] << ", " << sorted[1];
}

// Decode is deterministic by default: the same state and token give bit-identical logits (no float
// atomics whose order could change between launches). SSM_CUDA_FUSE_XPROJ=1 trades this away for
// speed on Mamba-1, and this test fails under it (seen on the H200: differences up to 1.8e-7).
TEST(CudaModel, DecodeIsDeterministic) {
  SKIP_WITHOUT_GPU();
  for (const char* fx : {"mamba1_bf16_untied", "mamba2_groups"}) {
    auto m = Model::load(std::string(SSM_FIXTURE_DIR) + "/" + fx, cuda("bf16"));
    const size_t V = size_t(m->vocab());
    State a = m->new_state(), b = m->new_state();
    std::vector<int32_t> p = {3, 1, 4, 1, 5};
    m->prefill(p.data(), 5, a, nullptr, false);
    m->copy_state(a, b);
    int32_t tok = 2;
    std::vector<float> la(V), lb(V);
    State* sa = &a;
    State* sb = &b;
    for (int t = 0; t < 4; t++) {
      m->step(&tok, 1, &sa, la.data());
      m->step(&tok, 1, &sb, lb.data());
      float d = 0.f;
      for (size_t i = 0; i < V; i++) d = std::max(d, std::abs(la[i] - lb[i]));
      EXPECT_EQ(d, 0.f) << fx << " step " << t << ": max |difference| " << d;
    }
  }
}

}  // namespace

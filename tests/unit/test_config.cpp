// config.json parsing: real published configs (fields as in the Hub repos), Python's Infinity,
// the FalconMamba expand quirk, the mamba_ssm layout, and clear errors for bad configs.
#include <gtest/gtest.h>

#include <cmath>

#include "ssm/config.hpp"
#include "ssm/error.hpp"

using namespace ssm;

TEST(Config, Mamba130mHf) {
  auto c = parse_model_config(R"({"architectures":["MambaForCausalLM"],"model_type":"mamba","hidden_size":768,
    "intermediate_size":1536,"num_hidden_layers":24,"state_size":16,"conv_kernel":4,"expand":2,"time_step_rank":48,
    "vocab_size":50280,"layer_norm_epsilon":1e-05,"use_bias":false,"use_conv_bias":true,"residual_in_fp32":true,
    "tie_word_embeddings":true,"hidden_act":"silu","torch_dtype":"float32"})", "config.json");
  EXPECT_EQ(c.arch, Arch::Mamba1);
  EXPECT_EQ(c.d_inner, 1536);
  EXPECT_EQ(c.dt_rank, 48);
  EXPECT_EQ(c.vocab, 50280);
  EXPECT_EQ(c.state_floats_per_layer(), 3 * 1536 + 1536 * 16);
}

TEST(Config, FalconMambaExpandQuirk) {
  auto c = parse_model_config(R"({"model_type":"falcon_mamba","hidden_size":4096,"intermediate_size":8192,"expand":16,
    "num_hidden_layers":64,"state_size":16,"time_step_rank":256,"vocab_size":65024,"mixer_rms_eps":1e-6,
    "tie_word_embeddings":false})", "config.json");
  EXPECT_EQ(c.d_inner, 8192);
  EXPECT_TRUE(c.bcdt_rms);
  EXPECT_FLOAT_EQ(c.mixer_rms_eps, 1e-6f);
  EXPECT_FALSE(c.tie_embeddings);
}

TEST(Config, Mamba2CodestralWithInfinity) {
  auto c = parse_model_config(R"({"model_type":"mamba2","hidden_size":4096,"num_hidden_layers":64,"num_heads":128,
    "head_dim":64,"n_groups":8,"state_size":128,"expand":2,"chunk_size":256,"vocab_size":32768,
    "time_step_limit":[0.0, Infinity],"norm_before_gate":true,"tie_word_embeddings":false})", "config.json");
  EXPECT_EQ(c.arch, Arch::Mamba2);
  EXPECT_EQ(c.d_inner, 8192);
  EXPECT_TRUE(std::isinf(c.dt_max));
  EXPECT_EQ(c.norm_group, 8192);  // transformers normalises over the whole inner width
  EXPECT_EQ(c.conv_channels(), 8192 + 2 * 8 * 128);
}

TEST(Config, MambaSsmLayout) {
  auto c = parse_model_config(R"({"d_model":2560,"d_intermediate":0,"n_layer":64,"vocab_size":50277,
    "ssm_cfg":{"layer":"Mamba2"},"attn_layer_idx":[],"attn_cfg":{},"rms_norm":true,"residual_in_fp32":true,
    "fused_add_norm":true,"pad_vocab_size_multiple":16,"tie_embeddings":true})", "config.json");
  EXPECT_EQ(c.layout, "mamba_ssm");
  EXPECT_EQ(c.vocab, 50288);
  EXPECT_EQ(c.vocab_config, 50277);
  EXPECT_EQ(c.n_heads, 80);
  EXPECT_EQ(c.d_state, 128);
  EXPECT_EQ(c.norm_group, 5120);
  auto m1 = parse_model_config(R"({"d_model":768,"n_layer":24,"vocab_size":50277,"ssm_cfg":{},"pad_vocab_size_multiple":8})", "c");
  EXPECT_EQ(m1.arch, Arch::Mamba1);
  EXPECT_EQ(m1.dt_rank, 48);
  EXPECT_EQ(m1.vocab, 50280);
}

TEST(Config, ErrorsNameTheField) {
  struct Case { const char* json; const char* expect; };
  Case cases[] = {
      {"{", "not valid JSON"},
      {"[]", "JSON object"},
      {R"({"model_type":"llama"})", "model_type 'llama' is not supported"},
      {R"({"foo":1})", "cannot tell the architecture"},
      {R"({"model_type":"mamba","num_hidden_layers":2,"vocab_size":10})", "'hidden_size'"},
      {R"({"model_type":"mamba","hidden_size":"big","num_hidden_layers":2,"vocab_size":10})", "'hidden_size' must be an integer"},
      {R"({"model_type":"mamba","hidden_size":-8,"num_hidden_layers":2,"vocab_size":10})", "must be positive"},
      {R"({"model_type":"mamba2","hidden_size":64,"num_hidden_layers":2,"vocab_size":10,"num_heads":3,"head_dim":64})", "num_heads * head_dim"},
      {R"({"model_type":"mamba2","hidden_size":64,"num_hidden_layers":2,"vocab_size":10,"num_heads":4,"head_dim":32,"n_groups":3})", "multiple of n_groups"},
      {R"({"model_type":"mamba","hidden_size":8,"num_hidden_layers":2,"vocab_size":10,"hidden_act":"gelu"})", "hidden_act"},
      {R"({"d_model":8,"n_layer":2,"vocab_size":10,"ssm_cfg":{"layer":"Mamba3"}})", "Mamba3"},
      {R"({"d_model":8,"n_layer":2,"vocab_size":10,"attn_layer_idx":[1]})", "attn_layer_idx"},
  };
  for (const auto& c : cases) {
    try {
      parse_model_config(c.json, "dir/config.json");
      ADD_FAILURE() << "accepted: " << c.json;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("dir/config.json"), std::string::npos) << m;
      EXPECT_NE(m.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << m;
    }
  }
}

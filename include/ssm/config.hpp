// ModelConfig: everything the engine needs to know about a checkpoint, read from config.json.
// One struct covers Hugging Face `mamba`, `falcon_mamba`, `mamba2` and the original `mamba_ssm`
// layout; field names follow docs/numerics.md (D model, E inner, N state, K conv, R dt rank, ...).
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace ssm {

enum class Arch { Mamba1, Mamba2 };

struct ModelConfig {
  std::string model_type;   // "mamba", "falcon_mamba", "mamba2" (mamba_ssm layout maps to these)
  std::string layout;       // "hf" (transformers names) or "mamba_ssm" (original repo names)
  Arch arch = Arch::Mamba1;

  int64_t d_model = 0;      // D
  int64_t n_layer = 0;
  int64_t vocab = 0;        // rows of the embedding / LM head (padded vocabulary)
  int64_t vocab_config = 0; // vocab_size as written in config.json
  float norm_eps = 1e-5f;   // block and final RMSNorm epsilon
  bool residual_in_fp32 = true;
  bool tie_embeddings = true;

  int64_t d_inner = 0;      // E
  int64_t d_state = 0;      // N
  int64_t d_conv = 4;       // K
  bool conv_bias = true;
  bool proj_bias = false;   // bias on in_proj / out_proj

  // Mamba-1 / FalconMamba
  int64_t dt_rank = 0;      // R
  bool bcdt_rms = false;    // FalconMamba: weightless RMSNorm on B, C and Δ-rank input
  float mixer_rms_eps = 1e-6f;

  // Mamba-2
  int64_t n_heads = 0;      // H
  int64_t head_dim = 0;     // P
  int64_t n_groups = 1;     // G
  int64_t chunk_size = 256; // Q
  float dt_min = 0.f, dt_max = std::numeric_limits<float>::infinity();  // time_step_limit
  int64_t norm_group = 0;   // gated-RMSNorm group width (E for transformers, E/G for mamba_ssm)
  bool gated_norm = true;   // mamba_ssm rmsnorm=False: plain y·silu(z), no norm
  bool norm_before_gate = false;

  int64_t conv_channels() const { return arch == Arch::Mamba1 ? d_inner : d_inner + 2 * n_groups * d_state; }
  // f32 elements of one sequence's recurrent state for one layer (conv window + SSM state).
  int64_t state_floats_per_layer() const {
    return (d_conv - 1) * conv_channels() + (arch == Arch::Mamba1 ? d_inner * d_state : n_heads * head_dim * d_state);
  }
};

// Parses the config.json text of a model directory. `path` names the file in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& path);

}  // namespace ssm

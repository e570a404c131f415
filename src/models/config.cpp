// config.json parsing for every supported layout (see include/ssm/config.hpp). Field names and
// defaults follow transformers' MambaConfig / FalconMambaConfig / Mamba2Config and mamba_ssm's
// MambaConfig + mixer constructor defaults (reference/mamba_spec.md §1.1, §2.1, §3.1).
#include <cmath>
#include <nlohmann/json.hpp>

#include "ssm/config.hpp"
#include "models/lm.hpp"
#include "ssm/error.hpp"

namespace ssm {
namespace {

using json = nlohmann::json;

// Python's json.dumps writes float('inf') as a bare Infinity, which is not JSON. Replace the bare
// tokens Infinity / -Infinity / NaN (outside strings) with marker strings read back by get_float.
std::string sanitize_python_json(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  bool in_str = false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (in_str) {
      out += c;
      if (c == '\\' && i + 1 < s.size()) out += s[++i];
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') { in_str = true; out += c; continue; }
    if (s.compare(i, 9, "-Infinity") == 0) { out += "\"-inf\""; i += 8; continue; }
    if (s.compare(i, 8, "Infinity") == 0) { out += "\"inf\""; i += 7; continue; }
    if (s.compare(i, 3, "NaN") == 0) { out += "\"nan\""; i += 2; continue; }
    out += c;
  }
  return out;
}

struct Reader {
  const json& j;
  const std::string& path;

  [[noreturn]] void bad(const std::string& key, const std::string& want) const {
    throw Error(path + ": field '" + key + "' must be " + want + ", got " + j.at(key).dump());
  }
  bool has(const std::string& k) const { return j.contains(k) && !j.at(k).is_null(); }
  int64_t get_int(const std::string& k, int64_t def, bool required = false) const {
    if (!has(k)) {
      if (required) throw Error(path + ": missing required field '" + k + "'");
      return def;
    }
    const json& v = j.at(k);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
    bad(k, "an integer");
  }
  double get_float(const std::string& k, double def) const {
    if (!has(k)) return def;
    return as_float(j.at(k), k);
  }
  double as_float(const json& v, const std::string& k) const {
    if (v.is_number()) return v.get<double>();
    // transformers >= 5 writes non-finite floats as {"__float__": "Infinity"}.
    const json& w = (v.is_object() && v.contains("__float__")) ? v.at("__float__") : v;
    if (w.is_number()) return w.get<double>();
    if (w.is_string()) {
      std::string s = w.get<std::string>();
      if (s == "Infinity") return INFINITY;
      if (s == "-Infinity") return -INFINITY;
      if (s == "inf") return INFINITY;
      if (s == "-inf") return -INFINITY;
    }
    throw Error(path + ": field '" + k + "' must be a number, got " + v.dump());
  }
  bool get_bool(const std::string& k, bool def) const {
    if (!has(k)) return def;
    if (!j.at(k).is_boolean()) bad(k, "true or false");
    return j.at(k).get<bool>();
  }
  std::string get_str(const std::string& k, const std::string& def) const {
    if (!has(k)) return def;
    if (!j.at(k).is_string()) bad(k, "a string");
    return j.at(k).get<std::string>();
  }
  // time_step_rank / dt_rank: an integer or "auto" (= ceil(D / 16)).
  int64_t get_rank(const std::string& k, int64_t d_model) const {
    int64_t autov = (d_model + 15) / 16;
    if (!has(k)) return autov;
    if (j.at(k).is_string()) {
      if (j.at(k).get<std::string>() == "auto") return autov;
      bad(k, "an integer or \"auto\"");
    }
    return get_int(k, autov);
  }
};

void require_positive(const std::string& path, const std::string& field, int64_t v) {
  if (v <= 0) throw Error(path + ": field '" + field + "' must be positive, got " + std::to_string(v));
  if (v > (int64_t(1) << 31)) throw Error(path + ": field '" + field + "' = " + std::to_string(v) + " is absurdly large");
}

void check_act(const Reader& r) {
  std::string act = r.get_str("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    throw Error(r.path + ": hidden_act '" + act + "' is not supported (Mamba mixers use silu)");
}

void parse_mamba1_hf(const Reader& r, ModelConfig& c) {
  c.arch = Arch::Mamba1;
  c.d_model = r.get_int("hidden_size", 768, true);
  c.n_layer = r.get_int("num_hidden_layers", 32, true);
  c.vocab = c.vocab_config = r.get_int("vocab_size", 50280, true);
  c.d_state = r.get_int("state_size", 16);
  c.d_conv = r.get_int("conv_kernel", 4);
  // FalconMamba configs carry expand=16 next to the true intermediate_size: the latter wins.
  c.d_inner = r.has("intermediate_size") ? r.get_int("intermediate_size", 0)
                                          : int64_t(std::llround(r.get_float("expand", 2) * double(c.d_model)));
  c.dt_rank = r.get_rank("time_step_rank", c.d_model);
  c.norm_eps = float(r.get_float("layer_norm_epsilon", 1e-5));
  c.proj_bias = r.get_bool("use_bias", false);
  c.conv_bias = r.get_bool("use_conv_bias", true);
  c.residual_in_fp32 = r.get_bool("residual_in_fp32", true);
  c.tie_embeddings = r.get_bool("tie_word_embeddings", true);
  if (c.model_type == "falcon_mamba") {
    c.bcdt_rms = true;
    c.mixer_rms_eps = float(r.get_float("mixer_rms_eps", 1e-6));
  }
  check_act(r);
}

void parse_mamba2_hf(const Reader& r, ModelConfig& c) {
  c.arch = Arch::Mamba2;
  c.d_model = r.get_int("hidden_size", 4096, true);
  c.n_layer = r.get_int("num_hidden_layers", 64, true);
  c.vocab = c.vocab_config = r.get_int("vocab_size", 32768, true);
  c.d_state = r.get_int("state_size", 128);
  c.d_conv = r.get_int("conv_kernel", 4);
  c.d_inner = int64_t(std::llround(r.get_float("expand", 2) * double(c.d_model)));
  c.n_heads = r.get_int("num_heads", 128);
  c.head_dim = r.get_int("head_dim", 64);
  c.n_groups = r.get_int("n_groups", 8);
  c.chunk_size = r.get_int("chunk_size", 256);
  c.norm_eps = float(r.get_float("layer_norm_epsilon", 1e-5));
  c.proj_bias = r.get_bool("use_bias", false);
  c.conv_bias = r.get_bool("use_conv_bias", true);
  c.residual_in_fp32 = r.get_bool("residual_in_fp32", true);
  c.tie_embeddings = r.get_bool("tie_word_embeddings", false);
  if (r.has("time_step_limit")) {
    const json& v = r.j.at("time_step_limit");
    if (!v.is_array() || v.size() != 2) throw Error(r.path + ": field 'time_step_limit' must be [min, max], got " + v.dump());
    c.dt_min = float(r.as_float(v[0], "time_step_limit"));
    c.dt_max = float(r.as_float(v[1], "time_step_limit"));
  }
  // transformers' MambaRMSNormGated normalises over the whole inner width, whatever n_groups is.
  c.norm_group = c.d_inner;
  check_act(r);
}

// Original state-spaces/mamba layout: {d_model, n_layer, vocab_size, ssm_cfg: {layer, ...}, ...}.
void parse_mamba_ssm(const Reader& r, ModelConfig& c) {
  c.layout = "mamba_ssm";
  c.d_model = r.get_int("d_model", 2560, true);
  c.n_layer = r.get_int("n_layer", 64, true);
  c.vocab_config = r.get_int("vocab_size", 50277, true);
  int64_t pad = r.get_int("pad_vocab_size_multiple", 8);
  require_positive(r.path, "pad_vocab_size_multiple", pad);
  c.vocab = (c.vocab_config + pad - 1) / pad * pad;
  c.tie_embeddings = r.get_bool("tie_embeddings", true);
  c.residual_in_fp32 = r.get_bool("residual_in_fp32", true);
  c.norm_eps = 1e-5f;  // not configurable in mamba_ssm
  if (!r.get_bool("rms_norm", true)) throw Error(r.path + ": rms_norm=false (LayerNorm blocks) is not supported yet");
  if (r.get_int("d_intermediate", 0) != 0) throw Error(r.path + ": d_intermediate > 0 (MLP sub-blocks) is not supported yet");
  if (r.has("attn_layer_idx") && !r.j.at("attn_layer_idx").empty())
    throw Error(r.path + ": attn_layer_idx is not empty; hybrid attention layers are not supported yet");
  json ssm_cfg = r.has("ssm_cfg") ? r.j.at("ssm_cfg") : json::object();
  if (!ssm_cfg.is_object()) throw Error(r.path + ": field 'ssm_cfg' must be an object");
  std::string sub = r.path + " ssm_cfg";
  Reader s{ssm_cfg, sub};
  std::string layer = s.get_str("layer", "Mamba1");
  double expand = s.get_float("expand", 2);
  c.d_inner = int64_t(std::llround(expand * double(c.d_model)));
  c.d_conv = s.get_int("d_conv", 4);
  c.conv_bias = s.get_bool("conv_bias", true);
  c.proj_bias = s.get_bool("bias", false);
  if (layer == "Mamba1") {
    c.arch = Arch::Mamba1;
    c.model_type = "mamba";
    c.d_state = s.get_int("d_state", 16);
    c.dt_rank = s.get_rank("dt_rank", c.d_model);
  } else if (layer == "Mamba2") {
    c.arch = Arch::Mamba2;
    c.model_type = "mamba2";
    c.d_state = s.get_int("d_state", 128);
    c.head_dim = s.get_int("headdim", 64);
    c.n_groups = s.get_int("ngroups", 1);
    c.chunk_size = s.get_int("chunk_size", 256);
    if (s.has("d_ssm") && s.get_int("d_ssm", c.d_inner) != c.d_inner)
      throw Error(sub + ": d_ssm different from expand*d_model (gated MLP inside the mixer) is not supported yet");
    require_positive(sub, "headdim", c.head_dim);
    c.n_heads = c.d_inner / c.head_dim;
    if (s.has("dt_limit")) {
      const json& v = ssm_cfg.at("dt_limit");
      if (!v.is_array() || v.size() != 2) throw Error(sub + ": field 'dt_limit' must be [min, max]");
      c.dt_min = float(s.as_float(v[0], "dt_limit"));
      c.dt_max = float(s.as_float(v[1], "dt_limit"));
    }
    c.gated_norm = s.get_bool("rmsnorm", true);
    c.norm_before_gate = s.get_bool("norm_before_gate", false);
    require_positive(sub, "ngroups", c.n_groups);
    c.norm_group = c.d_inner / c.n_groups;  // mamba_ssm's RMSNormGated uses group_size = d_ssm / ngroups
  } else {
    throw Error(sub + ": layer '" + layer + "' is not supported (expected Mamba1 or Mamba2)");
  }
}

void validate(const std::string& path, ModelConfig& c) {
  require_positive(path, "hidden_size/d_model", c.d_model);
  require_positive(path, "num_hidden_layers/n_layer", c.n_layer);
  require_positive(path, "vocab_size", c.vocab);
  require_positive(path, "intermediate_size/expand", c.d_inner);
  require_positive(path, "state_size/d_state", c.d_state);
  require_positive(path, "conv_kernel/d_conv", c.d_conv);
  if (c.d_state > 256) throw Error(path + ": state_size " + std::to_string(c.d_state) + " exceeds the supported maximum 256");
  if (c.d_conv > 64) throw Error(path + ": conv_kernel " + std::to_string(c.d_conv) + " exceeds the supported maximum 64");
  if (c.arch == Arch::Mamba1) {
    require_positive(path, "time_step_rank", c.dt_rank);
  } else {
    require_positive(path, "num_heads", c.n_heads);
    require_positive(path, "head_dim", c.head_dim);
    require_positive(path, "n_groups", c.n_groups);
    require_positive(path, "chunk_size", c.chunk_size);
    if (c.n_heads * c.head_dim != c.d_inner)
      throw Error(path + ": num_heads * head_dim = " + std::to_string(c.n_heads * c.head_dim) +
                  " must equal expand * hidden_size = " + std::to_string(c.d_inner));
    if (c.n_heads % c.n_groups != 0)
      throw Error(path + ": num_heads " + std::to_string(c.n_heads) + " is not a multiple of n_groups " + std::to_string(c.n_groups));
    if (c.d_inner % c.norm_group != 0) throw Error(path + ": inner width is not a multiple of the norm group");
    if (!(c.dt_min <= c.dt_max) || c.dt_min < 0)
      throw Error(path + ": time_step_limit must be [min, max] with 0 <= min <= max");
  }
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& path) {
  json j = json::parse(sanitize_python_json(json_text), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(path + ": not valid JSON");
  if (!j.is_object()) throw Error(path + ": top level must be a JSON object");
  Reader r{j, path};
  ModelConfig c;
  c.layout = "hf";
  if (r.has("model_type")) {
    c.model_type = r.get_str("model_type", "");
    if (c.model_type == "mamba" || c.model_type == "falcon_mamba") parse_mamba1_hf(r, c);
    else if (c.model_type == "mamba2") parse_mamba2_hf(r, c);
    else
      throw Error(path + ": model_type '" + c.model_type + "' is not supported (supported: mamba, falcon_mamba, mamba2, " +
                  "or the original mamba_ssm config with d_model/n_layer/ssm_cfg)");
  } else if (r.has("d_model") && r.has("n_layer")) {
    parse_mamba_ssm(r, c);
  } else {
    throw Error(path + ": no 'model_type' field and not a mamba_ssm config (d_model, n_layer, ssm_cfg); cannot tell the architecture");
  }
  validate(path, c);
  return c;
}

void count_params(const ModelConfig& c, const Checkpoint& ck, ModelInfo& mi) {
  std::map<std::string, int64_t> by;
  for (const std::string& name : ck.names()) {
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_scale") == 0) continue;  // q8 scales
    const TensorInfo& ti = ck.info(name);
    int64_t n = 1;
    for (int64_t d : ti.shape) n *= d;
    by[ti.dtype_str] += n;
    mi.params += n;
  }
  // A tied lm_head stored twice (mamba_ssm files) is one parameter set.
  if (c.tie_embeddings && ck.has("lm_head.weight")) {
    by[ck.info("lm_head.weight").dtype_str] -= c.vocab * c.d_model;
    mi.params -= c.vocab * c.d_model;
  }
  for (auto& [k, v] : by) mi.dtype_params.push_back({k, v});
}

}  // namespace ssm

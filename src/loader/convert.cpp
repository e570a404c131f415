// Checkpoint conversion (see convert.hpp).
#include "loader/convert.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kernels/params.hpp"
#include "loader/checkpoint.hpp"
#include "loader/quantize.hpp"
#include "ssm/config.hpp"
#include "ssm/error.hpp"

namespace ssm {
namespace {

namespace fs = std::filesystem;

}  // namespace

bool q8_quantizable(const std::string& name, const Shape& s) {
  if (s.size() != 2 || s[1] % kernels::kQ8Block != 0) return false;
  for (const char* suffix : {".in_proj.weight", ".x_proj.weight", ".out_proj.weight"})
    if (name.size() > std::strlen(suffix) && name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
      return true;
  return name == "lm_head.weight" || name == "backbone.embeddings.weight" || name == "backbone.embedding.weight";
}

ConvertResult convert_checkpoint(const std::string& dir, const std::string& to, const std::string& out) {
  DType target = DType::F32;
  const bool q8 = to == "q8";
  if (!q8 && (!parse_dtype(to, &target) || target == DType::I8))
    throw Error("--to '" + to + "': expected q8, f16, bf16 or f32");
  if (fs::exists(out) && fs::equivalent(fs::path(dir), fs::path(out)))
    throw Error("-o must differ from -m (refusing to overwrite the source checkpoint)");
  const std::string cfg_path = dir + "/config.json";
  if (!fs::exists(cfg_path)) throw Error(dir + ": no config.json (expected a Hugging Face model directory)");
  nlohmann::json cfg = nlohmann::json::parse(read_text_file(cfg_path), nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) throw Error(cfg_path + ": not valid JSON");
  (void)parse_model_config(cfg.dump(), cfg_path);  // refuse what we cannot run
  Checkpoint ck = Checkpoint::open(dir);

  std::vector<std::pair<std::string, Tensor>> outs;
  int64_t in_bytes = 0, out_bytes = 0, nq = 0;
  for (const std::string& name : ck.names()) {
    Tensor t = ck.get(name);
    in_bytes += int64_t(t.nbytes());
    if (t.dtype() == DType::I8) throw Error(dir + ": tensor '" + name + "' is already quantised");
    const int64_t n = t.numel();
    std::vector<float> f(static_cast<size_t>(n));
    to_f32(t.dtype(), t.raw(), f.data(), f.size());
    if (q8 && q8_quantizable(name, t.shape())) {
      const int64_t rows = t.shape()[0], cols = t.shape()[1];
      Tensor qt = Tensor::zeros(DType::I8, {rows, cols});
      Tensor st = Tensor::zeros(DType::F16, {rows, cols / kernels::kQ8Block});
      quantize_q8_rows(f.data(), rows, cols, static_cast<int8_t*>(qt.raw()), static_cast<uint16_t*>(st.raw()), "'" + name + "'");
      out_bytes += int64_t(qt.nbytes() + st.nbytes());
      outs.emplace_back(name, std::move(qt));
      outs.emplace_back(name + "_scale", std::move(st));
      nq++;
    } else {
      Tensor o = q8 ? t.clone() : Tensor::from_f32(f.data(), target, t.shape());
      out_bytes += int64_t(o.nbytes());
      outs.emplace_back(name, std::move(o));
    }
  }
  fs::create_directories(out);
  if (q8) cfg["ssm_quantization"] = {{"format", "q8"}, {"block_size", kernels::kQ8Block}, {"scale_dtype", "F16"}};
  else cfg["torch_dtype"] = std::string(target == DType::F32 ? "float32" : target == DType::F16 ? "float16" : "bfloat16");
  write_safetensors(out + "/model.safetensors", outs, {{"format", "pt"}});
  {
    const std::string tmp = out + "/config.json.tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(out + "/config.json: cannot open for writing");
    const std::string text = cfg.dump(2) + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) throw Error(out + "/config.json: write failed (disk full?)");
    fs::rename(tmp, out + "/config.json");
  }
  for (const char* extra : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                            "generation_config.json"})
    if (fs::exists(fs::path(dir) / extra))
      fs::copy_file(fs::path(dir) / extra, fs::path(out) / extra, fs::copy_options::overwrite_existing);
  return {int64_t(ck.names().size()), nq, in_bytes, out_bytes};
}


}  // namespace ssm

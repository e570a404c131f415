// Subcommand registration for the ssm CLI. Each register_* adds a subcommand to `app` and pushes a
// runner that returns the exit code when that subcommand was chosen, and -1 otherwise.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <cstdint>
#include <vector>

#include "ssm/model.hpp"

namespace ssm { class Tokenizer; }

namespace ssm::cli {

// The bundled model directory ($SSM_DEFAULT_MODEL overrides it).
std::string default_model_dir();
// Ids that end generation for the model in `dir` (generation_config.json, then the tokenizer).
std::vector<int32_t> eos_ids(const std::string& dir, const Tokenizer* tok);

using Runners = std::vector<std::function<int()>>;

void register_inspect(CLI::App& app, Runners& runners);
void register_logits(CLI::App& app, Runners& runners);
void register_generate(CLI::App& app, Runners& runners);
void register_perplexity(CLI::App& app, Runners& runners);
void register_bench(CLI::App& app, Runners& runners);
void register_tokenize(CLI::App& app, Runners& runners);
void register_convert(CLI::App& app, Runners& runners);
void register_chat(CLI::App& app, Runners& runners);

// --device / --dtype, shared by every subcommand that loads a model.
struct DeviceOpts {
  std::string device = "cpu", dtype = "auto", state_dtype = "f32", weight_memory = "auto";
};
void add_device_options(CLI::App* sub, DeviceOpts& o);
LoadOptions load_options(const DeviceOpts& o);

// Reads whitespace-separated token ids, one sequence per non-empty line.
std::vector<std::vector<int32_t>> read_id_lines(const std::string& path);

}  // namespace ssm::cli

// `ssm generate [-m DIR] (-p TEXT | --prompt-ids "1 2 3") [-n N] [sampling flags] [--output-ids]`:
// prefill the prompt, then decode one recurrent step per token, streaming text as it is produced.
// -m defaults to the bundled model (models/default, or $SSM_DEFAULT_MODEL).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "cli.hpp"
#include "runtime/tokenizer.hpp"
#include "loader/checkpoint.hpp"
#include "runtime/generate.hpp"
#include <nlohmann/json.hpp>

namespace ssm::cli {
namespace {

struct GenOpts {
  std::string dir, prompt, prompt_ids;
  int64_t n = 128;
  SamplingParams sp;
  bool output_ids = false, ignore_eos = false;
  std::vector<std::string> stops;
  DeviceOpts dev;
};


}  // namespace

std::string default_model_dir() {
  if (const char* e = std::getenv("SSM_DEFAULT_MODEL")) return e;
  return SSM_DEFAULT_MODEL_DIR;
}

// End-of-sequence ids: generation_config.json's eos_token_id (int or list), else the tokenizer's
// eos_token, else the conventional <|endoftext|> / </s> when the vocabulary has them.
std::vector<int32_t> eos_ids(const std::string& dir, const Tokenizer* tok) {
  std::vector<int32_t> ids;
  const std::string gc = dir + "/generation_config.json";
  if (std::filesystem::exists(gc)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(gc));
    } catch (const nlohmann::json::exception& e) {
      throw Error(gc + ": invalid JSON (" + e.what() + ")");
    }
    if (j.is_object() && j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
      else if (e.is_array())
        for (const auto& x : e)
          if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
    }
  }
  if (tok) {
    if (auto e = tok->eos_id()) ids.push_back(*e);
    if (ids.empty())
      for (const char* name : {"<|endoftext|>", "</s>"})
        if (auto e = tok->token_to_id(name)) ids.push_back(*e);
  }
  return ids;
}

namespace {

int run_generate(GenOpts& o) {
  if (o.dir.empty()) o.dir = default_model_dir();
  if (o.n < 0) throw Error("-n must be >= 0, got " + std::to_string(o.n));
  if (o.n > 1'000'000) throw Error("-n " + std::to_string(o.n) + " is too large (limit 1000000)");
  if (o.prompt.empty() == o.prompt_ids.empty()) throw Error("give exactly one of -p TEXT or --prompt-ids \"1 2 3\"");
  auto m = Model::load(o.dir, load_options(o.dev));
  std::unique_ptr<Tokenizer> tok;
  const std::string tj = o.dir + "/tokenizer.json";
  if (std::filesystem::exists(tj)) tok = Tokenizer::load(tj);
  std::vector<int32_t> prompt;
  if (!o.prompt_ids.empty()) {
    std::istringstream is(o.prompt_ids);
    std::string t;
    while (is >> t) {
      char* end = nullptr;
      long long v = std::strtoll(t.c_str(), &end, 10);
      if (*end || v < 0 || v >= m->vocab()) throw Error("--prompt-ids: '" + t + "' is not a token id in [0, " + std::to_string(m->vocab()) + ")");
      prompt.push_back(int32_t(v));
    }
  } else {
    if (!tok) throw Error(o.dir + ": no tokenizer.json; use --prompt-ids");
    prompt = tok->encode(o.prompt, /*add_special_tokens=*/true);  // BOS etc. as tokenizer_config.json says
  }
  if (prompt.empty()) throw Error("the prompt encodes to no tokens");
  if (prompt.size() > 1'000'000) throw Error("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the 1000000-token limit");
  GenerateOptions go;
  go.max_new_tokens = o.n;
  go.sampling = o.sp;
  go.ignore_eos = o.ignore_eos;
  go.eos_ids = eos_ids(o.dir, tok.get());
  std::unique_ptr<StreamDecoder> sd;
  if (tok) sd = std::make_unique<StreamDecoder>(*tok);
  StopFilter stop(o.stops);
  bool first = true;
  if (!o.output_ids && tok) std::fputs(o.prompt.c_str(), stdout), std::fflush(stdout);
  State st = m->new_state();
  auto r = generate(*m, st, prompt, go, [&](int32_t id) {
    if (o.output_ids || !tok) {
      std::printf(first ? "%d" : " %d", id);
      first = false;
    } else {
      std::fputs(stop.push(sd->push(id)).c_str(), stdout);
    }
    std::fflush(stdout);
    return !stop.stopped();
  });
  if (!o.output_ids && tok) std::fputs(stop.push(sd->flush()).c_str(), stdout), std::fputs(stop.flush().c_str(), stdout);
  std::printf("\n");
  std::fprintf(stderr, "[prompt %lld tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | finish: %s]\n",
               (long long)r.prompt_tokens, r.prompt_tokens / std::max(r.prefill_seconds, 1e-9), r.tokens.size(),
               r.tokens.size() / std::max(r.decode_seconds, 1e-9), r.finish_reason.c_str());
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("generate", "Generate text (streams tokens as they are produced)");
  auto o = std::make_shared<GenOpts>();
  o->sp.seed = 0;
  sub->add_option("-m,--model", o->dir, "Model directory (default: the bundled model)");
  sub->add_option("-p,--prompt", o->prompt, "Prompt text");
  sub->add_option("--prompt-ids", o->prompt_ids, "Prompt as space-separated token ids");
  sub->add_option("-n,--n-predict", o->n, "Tokens to generate")->capture_default_str();
  sub->add_option("--temperature,--temp", o->sp.temperature, "Temperature (0 = greedy)")->capture_default_str();
  sub->add_option("--top-k", o->sp.top_k, "Top-k (0 = off)")->capture_default_str();
  sub->add_option("--top-p", o->sp.top_p, "Top-p (1 = off)")->capture_default_str();
  sub->add_option("--min-p", o->sp.min_p, "Min-p (0 = off)")->capture_default_str();
  sub->add_option("--repeat-penalty", o->sp.repetition_penalty, "Repetition penalty (1 = off)")->capture_default_str();
  sub->add_option("--presence-penalty", o->sp.presence_penalty, "Presence penalty")->capture_default_str();
  sub->add_option("--frequency-penalty", o->sp.frequency_penalty, "Frequency penalty")->capture_default_str();
  sub->add_option("--seed,-s", o->sp.seed, "Random seed")->capture_default_str();
  sub->add_option("--stop", o->stops, "Stop string (repeatable)");
  sub->add_flag("--output-ids", o->output_ids, "Print only the generated token ids");
  sub->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-text");
  add_device_options(sub, o->dev);
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    return run_generate(*o);
  });
}

}  // namespace ssm::cli

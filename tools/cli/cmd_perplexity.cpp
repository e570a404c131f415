// `ssm perplexity -m DIR -f TEXT_FILE [--ctx N]`: perplexity of a text file (windowing in
// src/runtime/perplexity.hpp).
#include <cstdio>

#include "cli.hpp"
#include "loader/checkpoint.hpp"
#include "runtime/tokenizer.hpp"
#include "runtime/perplexity.hpp"

namespace ssm::cli {

void register_perplexity(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("perplexity", "Perplexity of a text file");
  struct Opts { std::string dir, file; int64_t ctx = 512; DeviceOpts dev; };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->dir, "Model directory")->required();
  sub->add_option("-f,--file", o->file, "UTF-8 text file")->required();
  sub->add_option("--ctx,-c", o->ctx, "Window length in tokens")->capture_default_str();
  add_device_options(sub, o->dev);
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto m = Model::load(o->dir, load_options(o->dev));
    auto tok = Tokenizer::load(o->dir + "/tokenizer.json");
    auto ids = tok->encode(read_text_file(o->file));
    auto r = perplexity(*m, ids, o->ctx);
    std::printf("perplexity %.4f over %lld scored tokens (%lld windows of up to %lld)\n", r.ppl, (long long)r.scored,
                (long long)r.windows, (long long)o->ctx);
    return 0;
  });
}

}  // namespace ssm::cli

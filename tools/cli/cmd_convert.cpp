// `ssm convert -m DIR --to q8|f16|bf16|f32 -o OUT_DIR` (rules in src/loader/convert.hpp).
#include <cstdio>

#include "cli.hpp"
#include "loader/convert.hpp"

namespace ssm::cli {

void register_convert(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("convert", "Convert a checkpoint's weights (q8 quantisation or a float dtype)");
  struct Opts { std::string dir, to, out; };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->dir, "Model directory")->required();
  sub->add_option("--to", o->to, "q8 | f16 | bf16 | f32")->required();
  sub->add_option("-o,--out", o->out, "Output directory")->required();
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto r = convert_checkpoint(o->dir, o->to, o->out);
    std::printf("%s -> %s: %lld tensors (%lld quantised to q8), %.1f MB -> %.1f MB\n", o->dir.c_str(), o->out.c_str(),
                (long long)r.tensors, (long long)r.quantized, r.in_bytes / 1e6, r.out_bytes / 1e6);
    return 0;
  });
}

}  // namespace ssm::cli

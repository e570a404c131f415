// `ssm inspect -m DIR`: architecture, sizes, parameter count by dtype, state bytes per sequence.
#include <cstdio>

#include "cli.hpp"
#include "ssm/model.hpp"

namespace ssm::cli {

void register_inspect(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("inspect", "Print a model's architecture, parameters and state size");
  auto dir = std::make_shared<std::string>();
  sub->add_option("-m,--model", *dir, "Model directory (config.json + *.safetensors)")->required();
  runners.push_back([sub, dir]() -> int {
    if (!sub->parsed()) return -1;
    auto m = Model::load(*dir);
    const ModelConfig& c = m->config();
    ModelInfo mi = m->info();
    std::printf("model_type     %s (%s layout)\n", c.model_type.c_str(), c.layout.c_str());
    std::printf("architecture   %s\n", c.arch == Arch::Mamba1 ? (c.bcdt_rms ? "Mamba-1 (FalconMamba B/C/dt norms)" : "Mamba-1") : "Mamba-2");
    std::printf("layers         %lld\n", (long long)c.n_layer);
    std::printf("d_model        %lld\n", (long long)c.d_model);
    std::printf("d_inner        %lld\n", (long long)c.d_inner);
    std::printf("d_state        %lld\n", (long long)c.d_state);
    std::printf("d_conv         %lld\n", (long long)c.d_conv);
    if (c.arch == Arch::Mamba1) {
      std::printf("dt_rank        %lld\n", (long long)c.dt_rank);
    } else {
      std::printf("heads          %lld x %lld (groups %lld, chunk %lld)\n", (long long)c.n_heads, (long long)c.head_dim,
                  (long long)c.n_groups, (long long)c.chunk_size);
    }
    std::printf("vocab          %lld (config vocab_size %lld)\n", (long long)c.vocab, (long long)c.vocab_config);
    std::printf("tied embedding %s\n", c.tie_embeddings ? "yes" : "no");
    std::printf("parameters     %lld\n", (long long)mi.params);
    for (const auto& [dt, n] : mi.dtype_params) std::printf("  %-12s %lld\n", dt.c_str(), (long long)n);
    std::printf("state/seq      %lld bytes (f32; %lld layers x (conv %lld x %lld + ssm %lld))\n", (long long)mi.state_bytes,
                (long long)c.n_layer, (long long)(c.d_conv - 1), (long long)c.conv_channels(),
                (long long)(c.state_floats_per_layer() - (c.d_conv - 1) * c.conv_channels()));
    return 0;
  });
}

}  // namespace ssm::cli

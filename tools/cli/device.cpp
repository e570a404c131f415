// --device and --dtype for the subcommands that load a model (generate, logits, perplexity, bench).
#include "cli.hpp"

namespace ssm::cli {

void add_device_options(CLI::App* sub, DeviceOpts& o) {
  sub->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  sub->add_option("--dtype", o.dtype, "Weights on the GPU: auto (bf16), bf16, f16, f32")->capture_default_str();
  sub->add_option("--state-dtype", o.state_dtype, "Recurrent state: f32, or bf16 on the GPU (half the state memory and traffic)")
      ->capture_default_str();
  sub->add_option("--weight-memory", o.weight_memory,
                  "Weight files: mmap (page cache), resident (read whole into memory advised for huge pages), or auto "
                  "(resident on the CPU when they take at most half the available memory)")
      ->check(CLI::IsMember({"auto", "mmap", "resident"}))
      ->capture_default_str();
}

LoadOptions load_options(const DeviceOpts& o) {
  LoadOptions l;
  l.device = o.device;
  l.dtype = o.dtype;
  l.state_dtype = o.state_dtype;
  l.weight_memory = o.weight_memory;
  return l;
}

}  // namespace ssm::cli

// ssm command-line entry point. Each subcommand lives in its own file (cmd_*.cpp) and registers
// itself here; errors from the library are printed as one line and exit with status 1.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli.hpp"
#include "kernels/cpu/cpu.hpp"
#include "ssm/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ssm: state space sequence models (Mamba-1/2, FalconMamba) on CPU"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  app.fallthrough();  // -t/--isa may follow the subcommand
  int threads = 0;
  std::string isa;
  app.add_option("-t,--threads", threads, "CPU threads (default: $SSM_THREADS, else all hardware threads)");
  app.add_option("--isa", isa, "Restrict CPU SIMD kernels to one ISA (avx3, avx2, sse4, ..., scalar; default auto)");
  ssm::cli::Runners runners;
  ssm::cli::register_inspect(app, runners);
  ssm::cli::register_logits(app, runners);
  ssm::cli::register_generate(app, runners);
  ssm::cli::register_perplexity(app, runners);
  ssm::cli::register_bench(app, runners);
  ssm::cli::register_tokenize(app, runners);
  ssm::cli::register_convert(app, runners);
  ssm::cli::register_chat(app, runners);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (threads < 0 || threads > 1024) throw ssm::Error("--threads must be in [1, 1024]");
    if (threads > 0) ssm::kernels::cpu::set_threads(threads);
    if (!isa.empty()) ssm::kernels::cpu::set_isa(isa);
    for (auto& r : runners) {
      int rc = r();
      if (rc >= 0) return rc;
    }
  } catch (const ssm::Error& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ssm: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// `ssm logits -m DIR --ids-file F --out OUT.npy [--mode prefill|step|chunked:N]`: raw logits of each
// line of token ids, as float32 (sequences, longest, vocab) with NaN past each sequence's end.
//   prefill    all sequences in one forward call (parallel / chunked scan)
//   step       one token at a time through the recurrent step (all sequences batched per step)
//   chunked:N  N tokens per call, carrying the state between calls
#include <cmath>
#include <fstream>
#include <sstream>

#include "cli.hpp"
#include "core/npy.hpp"
#include "ssm/model.hpp"

namespace ssm::cli {

std::vector<std::vector<int32_t>> read_id_lines(const std::string& path) {
  std::ifstream is(path);
  if (!is) throw Error(path + ": cannot open");
  std::vector<std::vector<int32_t>> out;
  std::string line;
  int lineno = 0;
  while (std::getline(is, line)) {
    lineno++;
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    std::string tok;
    while (ls >> tok) {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(tok.c_str(), &end, 10);
      if (*end != 0 || errno || v < 0 || v > INT32_MAX)
        throw Error(path + ":" + std::to_string(lineno) + ": '" + tok + "' is not a non-negative token id");
      ids.push_back(int32_t(v));
    }
    if (!ids.empty()) out.push_back(std::move(ids));
  }
  if (out.empty()) throw Error(path + ": no token ids found (expected one sequence per line)");
  return out;
}

namespace {

int run_logits(const std::string& dir, const std::string& ids_file, const std::string& out, const std::string& mode,
               const DeviceOpts& dev) {
  auto seqs = read_id_lines(ids_file);
  int64_t chunk = 0;  // 0 = whole prompt
  if (mode == "step") chunk = 1;
  else if (mode.rfind("chunked:", 0) == 0) {
    try {
      chunk = std::stoll(mode.substr(8));
    } catch (...) {
      chunk = -1;
    }
    if (chunk <= 0) throw Error("--mode " + mode + ": N must be a positive integer");
  } else if (mode != "prefill") {
    throw Error("--mode '" + mode + "' is not one of prefill, step, chunked:N");
  }
  auto m = Model::load(dir, load_options(dev));
  const int64_t V = m->vocab();
  int64_t Lmax = 0;
  for (auto& s : seqs) Lmax = std::max<int64_t>(Lmax, int64_t(s.size()));
  const int64_t S = int64_t(seqs.size());
  if (double(S) * double(Lmax) * double(V) * 4 > 64e9) throw Error("logits output would exceed 64 GB; pass fewer or shorter sequences");
  std::vector<float> logits(static_cast<size_t>(S * Lmax * V), NAN);
  std::vector<State> states;
  for (int64_t s = 0; s < S; s++) states.push_back(m->new_state());
  for (int64_t pos = 0; pos < Lmax; pos += chunk ? chunk : Lmax) {
    std::vector<SeqRequest> reqs;
    for (int64_t s = 0; s < S; s++) {
      int64_t n = int64_t(seqs[s].size());
      if (pos >= n) continue;
      int64_t take = chunk ? std::min(chunk, n - pos) : n;
      reqs.push_back({seqs[s].data() + pos, take, &states[s], logits.data() + (s * Lmax + pos) * V, true});
    }
    m->forward(reqs);
  }
  write_npy_f32(out, logits.data(), {S, Lmax, V});
  return 0;
}

}  // namespace

void register_logits(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("logits", "Write the raw logits of token-id sequences to a .npy file");
  struct Opts { std::string dir, ids, out, mode = "prefill"; DeviceOpts dev; };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->dir, "Model directory")->required();
  sub->add_option("--ids-file,--ids", o->ids, "Text file: one sequence of space-separated token ids per line")->required();
  sub->add_option("--out,-o", o->out, "Output .npy path")->required();
  sub->add_option("--mode", o->mode, "prefill | step | chunked:N")->capture_default_str();
  add_device_options(sub, o->dev);
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    return run_logits(o->dir, o->ids, o->out, o->mode, o->dev);
  });
}

}  // namespace ssm::cli

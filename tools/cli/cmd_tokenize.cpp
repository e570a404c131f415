// `ssm tokenize -t TOKENIZER_JSON --file F` prints the ids of the file's whole text (no special tokens
// added); `ssm detokenize -t TOKENIZER_JSON --ids "1 2 3"` prints the text.
#include <cstdio>
#include <sstream>

#include "cli.hpp"
#include "loader/checkpoint.hpp"
#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"

namespace ssm::cli {

void register_tokenize(CLI::App& app, Runners& runners) {
  auto* tk = app.add_subcommand("tokenize", "Print the token ids of a text file");
  auto* dt = app.add_subcommand("detokenize", "Print the text of token ids");
  struct Opts { std::string tok, file, ids; };
  auto o = std::make_shared<Opts>();
  tk->add_option("-t,--tokenizer", o->tok, "tokenizer.json")->required();
  tk->add_option("-f,--file", o->file, "UTF-8 text file")->required();
  dt->add_option("-t,--tokenizer", o->tok, "tokenizer.json")->required();
  dt->add_option("--ids", o->ids, "Space-separated token ids")->required();
  runners.push_back([tk, o]() -> int {
    if (!tk->parsed()) return -1;
    auto t = Tokenizer::load(o->tok);
    auto ids = t->encode(read_text_file(o->file));
    for (size_t i = 0; i < ids.size(); i++) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
    return 0;
  });
  runners.push_back([dt, o]() -> int {
    if (!dt->parsed()) return -1;
    auto t = Tokenizer::load(o->tok);
    std::vector<int32_t> ids;
    std::istringstream is(o->ids);
    std::string s;
    while (is >> s) {
      char* end = nullptr;
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (*end || v < 0 || v >= t->vocab_size()) throw ssm::Error("--ids: '" + s + "' is not a token id of " + o->tok);
      ids.push_back(int32_t(v));
    }
    std::fputs(t->decode(ids).c_str(), stdout);
    std::printf("\n");
    return 0;
  });
}

}  // namespace ssm::cli

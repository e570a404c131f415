// `ssm chat [-m DIR] [--system TEXT] [-n N] [sampling flags] [--verbose]`: a chat REPL over the model's
// Hugging Face chat template. Each user line is appended to the conversation, the template is rendered
// with add_generation_prompt=true and only the part of the rendering the model has not seen yet is fed:
// the recurrent state after the previous reply already holds everything before it (an SSM state is
// fixed-size, so keeping it costs nothing). If the earlier text is not a prefix of the new rendering
// (templates that rewrite history), the state is rebuilt from the whole rendering.
// With stdin not a terminal, every line is one user message and each reply is printed on its own line.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "runtime/chat_template.hpp"
#include "runtime/generate.hpp"
#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"
#include "ssm/model.hpp"

namespace ssm::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct ChatOpts {
  std::string dir, system;
  int64_t n = 512;
  SamplingParams sp;
  bool verbose = false;
};

// The text a template puts right after an assistant message (e.g. "<|im_end|>", "<|eot_id|>",
// "<end_of_turn>"): found by rendering a conversation with a marker as the assistant's content.
std::string end_of_turn(const ChatTemplate& t, const ChatRenderOptions& base) {
  const std::string marker = "ssmchatmarker";
  ChatRenderOptions o = base;
  o.add_generation_prompt = false;
  ojson msgs = ojson::array({{{"role", "user"}, {"content", "x"}}, {{"role", "assistant"}, {"content", marker}}});
  std::string text;
  try {
    text = t.render(msgs, o);
  } catch (const Error&) {
    return "";
  }
  size_t p = text.rfind(marker);
  if (p == std::string::npos) return "";
  std::string after = text.substr(p + marker.size());
  size_t b = after.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = after.find_first_of(" \t\r\n", b);
  return after.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

std::string token_text(const Tokenizer& tok, std::optional<int32_t> id) {
  return id ? tok.id_to_token(*id) : std::string();
}

int run_chat(ChatOpts& o) {
  if (o.dir.empty()) o.dir = default_model_dir();
  if (o.n <= 0 || o.n > 1'000'000) throw Error("-n must be in [1, 1000000], got " + std::to_string(o.n));
  const std::string tj = o.dir + "/tokenizer.json";
  if (!std::filesystem::exists(tj)) throw Error(o.dir + ": no tokenizer.json (ssm chat needs the model's tokenizer)");
  auto tok = Tokenizer::load(tj);
  if (tok->chat_template().empty())
    throw Error(o.dir + ": the model has no chat template (no chat_template.jinja and no chat_template in "
                        "tokenizer_config.json); use `ssm generate -p TEXT` for plain text completion");
  const std::string jinja_path = o.dir + "/chat_template.jinja";
  auto tmpl = ChatTemplate::parse(tok->chat_template(), std::filesystem::exists(jinja_path)
                                                            ? jinja_path
                                                            : o.dir + "/tokenizer_config.json: chat_template");
  auto m = Model::load(o.dir);

  ChatRenderOptions ro;
  ro.add_generation_prompt = true;
  ro.bos_token = token_text(*tok, tok->bos_id());
  ro.eos_token = token_text(*tok, tok->eos_id());

  GenerateOptions go;
  go.max_new_tokens = o.n;
  go.eos_ids = eos_ids(o.dir, tok.get());
  std::vector<std::string> stops;
  const std::string eot = end_of_turn(tmpl, ro);
  if (!eot.empty()) {
    stops.push_back(eot);
    if (auto id = tok->token_to_id(eot)) go.eos_ids.push_back(*id);
  }
  if (o.verbose) {
    std::fprintf(stderr, "[chat] template %s, end of turn '%s', %zu stop ids\n", tmpl.name().c_str(), eot.c_str(),
                 go.eos_ids.size());
  }

  const bool interactive = isatty(STDIN_FILENO) != 0;
  ojson messages = ojson::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  const size_t base_messages = messages.size();

  State state = m->new_state();
  bool have_state = false;
  std::string fed_text;  // text whose tokens the state has consumed
  int turn = 0;
  std::string line;
  for (;;) {
    if (interactive) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (interactive && (line == "/exit" || line == "/quit")) break;
    if (interactive && line == "/reset") {
      messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(base_messages), messages.end());
      have_state = false;
      std::puts("[conversation cleared]");
      continue;
    }
    ++turn;
    messages.push_back({{"role", "user"}, {"content", line}});
    std::string rendered;
    try {
      rendered = tmpl.render(messages, ro);
    } catch (const Error& e) {
      messages.erase(messages.end() - 1);
      if (!interactive) throw Error(std::string("chat template: ") + e.what());
      std::printf("[chat template error: %s]\n", e.what());
      continue;
    }

    // Feed only what the state has not seen, when the history is unchanged.
    bool reuse = have_state && rendered.size() > fed_text.size() && rendered.compare(0, fed_text.size(), fed_text) == 0;
    std::vector<int32_t> prompt;
    if (reuse) prompt = tok->encode(std::string_view(rendered).substr(fed_text.size()), false);
    if (prompt.empty()) {
      reuse = false;
      state = m->new_state();
      prompt = tok->encode(rendered, false);  // the template writes BOS itself, as transformers assumes
    }
    if (prompt.empty()) throw Error("the rendered conversation encodes to no tokens");
    if (o.verbose) {
      size_t full = reuse ? tok->encode(rendered, false).size() : prompt.size();
      std::fprintf(stderr, "[chat] turn %d: fed %zu prompt tokens (full conversation %zu tokens, state %s)\n", turn,
                   prompt.size(), full, reuse ? "reused" : "rebuilt");
    }

    StreamDecoder sd(*tok);
    StopFilter stop(stops);
    std::string reply;
    bool stopped_by_text = false;
    SamplingParams sp = o.sp;
    sp.seed = o.sp.seed + static_cast<uint64_t>(turn - 1);
    go.sampling = sp;
    auto emit = [&](const std::string& s) {
      reply += s;
      std::fputs(s.c_str(), stdout);
      std::fflush(stdout);
    };
    auto r = generate(*m, state, prompt, go, [&](int32_t id) {
      emit(stop.push(sd.push(id)));
      if (stop.stopped()) stopped_by_text = true;
      return !stop.stopped();
    });
    emit(stop.push(sd.flush()));
    emit(stop.flush());
    std::fputs("\n", stdout);
    std::fflush(stdout);
    have_state = true;

    // generate() steps every emitted token except the last one when it stopped on a stop string or
    // the length limit (an EOS id is never stepped and never emitted).
    std::vector<int32_t> fed = r.tokens;
    bool eos_stop = r.finish_reason == "stop" && !stopped_by_text;
    if (!eos_stop && !fed.empty()) fed.pop_back();
    fed_text = rendered + tok->decode(fed, false);
    messages.push_back({{"role", "assistant"}, {"content", reply}});
    if (o.verbose) {
      std::fprintf(stderr, "[chat] turn %d: generated %zu tokens, %.1f tok/s, finish: %s\n", turn, r.tokens.size(),
                   r.tokens.size() / std::max(r.decode_seconds, 1e-9), r.finish_reason.c_str());
    }
  }
  return 0;
}

}  // namespace

void register_chat(CLI::App& app, Runners& runners) {
  auto* sub = app.add_subcommand("chat", "Chat with the model through its chat template (reads stdin)");
  auto o = std::make_shared<ChatOpts>();
  sub->add_option("-m,--model", o->dir, "Model directory (default: the bundled model)");
  sub->add_option("--system", o->system, "System message");
  sub->add_option("-n,--n-predict", o->n, "Maximum tokens per reply")->capture_default_str();
  sub->add_option("--temperature,--temp", o->sp.temperature, "Temperature (0 = greedy)")->capture_default_str();
  sub->add_option("--top-k", o->sp.top_k, "Top-k (0 = off)")->capture_default_str();
  sub->add_option("--top-p", o->sp.top_p, "Top-p (1 = off)")->capture_default_str();
  sub->add_option("--min-p", o->sp.min_p, "Min-p (0 = off)")->capture_default_str();
  sub->add_option("--repeat-penalty", o->sp.repetition_penalty, "Repetition penalty (1 = off)")->capture_default_str();
  sub->add_option("--seed,-s", o->sp.seed, "Random seed (turn k uses seed + k - 1)")->capture_default_str();
  sub->add_flag("-v,--verbose", o->verbose, "Print per-turn token counts and speed to stderr");
  runners.push_back([sub, o]() -> int {
    if (!sub->parsed()) return -1;
    return run_chat(*o);
  });
}

}  // namespace ssm::cli

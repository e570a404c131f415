// ssm::ChatTemplate: renders Hugging Face chat templates (the Jinja subset that tokenizer_config.json /
// chat_template.jinja templates use) the way transformers does: Jinja2 semantics with trim_blocks,
// lstrip_blocks and loop controls, transformers' tojson, raise_exception() and strftime_now().
// Parsing happens once in parse(); render() is const and thread-safe. Every failure (syntax, unknown
// filter, type errors, resource limits) throws ssm::Error naming the template and the line/column;
// raise_exception(msg) throws ssm::Error whose what() is exactly msg. docs/chat.md lists the subset.
#pragma once
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ssm {

namespace jinja {
struct Template;
}

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
  nlohmann::ordered_json tools;                                      // null: passed as None
  nlohmann::ordered_json documents;                                  // null: passed as None
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();   // enable_thinking, custom kwargs
};

class ChatTemplate {
 public:
  // Parses `source`; `what` names the template in error messages (e.g. its file).
  static ChatTemplate parse(const std::string& source, const std::string& what = "chat template");

  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // messages: array of {"role", "content", optionally "tool_calls", "name", ...}. The context is
  // what transformers' apply_chat_template passes: messages, tools, documents,
  // add_generation_prompt, bos_token, eos_token, then every key of options.extra (extra wins).
  // Key order of ordered_json objects is kept (it shows in tojson output).
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options = {}) const;

  // Lower level: renders with `context` (a JSON object) as the only variables.
  std::string render_context(const nlohmann::ordered_json& context) const;

  // Pins the time strftime_now() formats (as UTC) for reproducible prompts and tests; by default it
  // formats the current local time.
  void set_fixed_time(std::optional<std::time_t> t) { fixed_time_ = t; }

  const std::string& source() const { return source_; }
  const std::string& name() const { return what_; }

 private:
  ChatTemplate();
  std::unique_ptr<jinja::Template> tmpl_;
  std::string source_, what_;
  std::optional<std::time_t> fixed_time_;
};

}  // namespace ssm

// ChatTemplate (chat_template.hpp): parses once, converts the JSON context into engine values and turns
// the engine's internal errors into ssm::Error messages that name the template and position.
#include "runtime/chat_template.hpp"

#include "runtime/chat_template_impl.hpp"
#include "ssm/error.hpp"

namespace ssm {
namespace {

constexpr int kMaxJsonDepth = 256;

template <class J>
jinja::Value from_json(const J& j, int depth) {
  using jinja::Value;
  if (depth > kMaxJsonDepth) throw Error("chat template input: JSON nested too deeply");
  switch (j.type()) {
    case J::value_t::null: return Value::none();
    case J::value_t::boolean: return Value::boolean(j.template get<bool>());
    case J::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case J::value_t::number_unsigned: {
      auto u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case J::value_t::number_float: return Value::number(j.template get<double>());
    case J::value_t::string: return Value::string(j.template get<std::string>());
    case J::value_t::array: {
      jinja::List items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x, depth + 1));
      return Value::make_list(std::move(items));
    }
    case J::value_t::object: {
      auto d = std::make_shared<jinja::Dict>();
      for (auto it = j.begin(); it != j.end(); ++it) d->set(it.key(), from_json(it.value(), depth + 1));
      return Value::make_dict(std::move(d));
    }
    default: throw Error("chat template input: unsupported JSON value (binary or discarded)");
  }
}

}  // namespace

ChatTemplate::ChatTemplate() = default;
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

ChatTemplate ChatTemplate::parse(const std::string& source, const std::string& what) {
  ChatTemplate t;
  t.source_ = source;
  t.what_ = what;
  // Jinja2 drops one trailing newline of the template source (keep_trailing_newline=False).
  std::string src = source;
  if (src.size() >= 2 && src.compare(src.size() - 2, 2, "\r\n") == 0) src.resize(src.size() - 2);
  else if (!src.empty() && (src.back() == '\n' || src.back() == '\r')) src.pop_back();
  try {
    t.tmpl_ = jinja::parse(src);
  } catch (const jinja::SyntaxError& e) {
    throw Error(what + ": line " + std::to_string(e.line) + ", column " + std::to_string(e.col) + ": " + e.message);
  }
  return t;
}

std::string ChatTemplate::render_context(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) throw Error(what_ + ": the render context must be a JSON object");
  jinja::Value v = from_json(context, 0);
  try {
    return jinja::render(*tmpl_, v.dict, fixed_time_);
  } catch (const jinja::Raised& r) {
    throw Error(r.message);
  } catch (const jinja::Failure& f) {
    throw Error(what_ + ": " + f.message);
  }
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& o) const {
  if (!messages.is_array()) throw Error(what_ + ": messages must be a JSON array");
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = o.tools;
  ctx["documents"] = o.documents;
  ctx["add_generation_prompt"] = o.add_generation_prompt;
  ctx["bos_token"] = o.bos_token;
  ctx["eos_token"] = o.eos_token;
  if (!o.extra.is_null() && !o.extra.is_object()) throw Error(what_ + ": extra variables must be a JSON object");
  if (o.extra.is_object())
    for (auto it = o.extra.begin(); it != o.extra.end(); ++it) ctx[it.key()] = it.value();
  return render_context(ctx);
}

}  // namespace ssm

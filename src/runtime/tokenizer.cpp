// ssm::Tokenizer and ssm::StreamDecoder: loading tokenizer.json (+ tokenizer_config.json), added-token
// matching (leftmost-longest, lstrip/rstrip/single_word, raw vs normalized), and the encode pipeline
// normalizer -> pre-tokenizer -> BPE -> post-processor, plus decode and incremental decoding.
// Component implementations live in tokenizer_{unicode,regex,normalizers,pretokenizers,bpe,decoders}.cpp.
#include "runtime/tokenizer.hpp"

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "runtime/tokenizer_internal.hpp"
#include "ssm/error.hpp"

namespace ssm {

using tok::json;

namespace tok {

void AddedMatcher::add(const std::string& content, int32_t token_index) {
  if (content.empty()) return;
  size_t node = 0;
  for (unsigned char c : content) {
    int32_t child = -1;
    for (auto& [byte, idx] : nodes_[node].next)
      if (byte == c) child = idx;
    if (child < 0) {
      child = static_cast<int32_t>(nodes_.size());
      nodes_[node].next.emplace_back(c, child);
      nodes_.emplace_back();
    }
    node = static_cast<size_t>(child);
  }
  if (nodes_[node].token < 0) nodes_[node].token = token_index;
  first_byte_[static_cast<unsigned char>(content[0])] = true;
}

std::optional<std::pair<int32_t, size_t>> AddedMatcher::longest_at(std::string_view s, size_t pos) const {
  if (!first_byte_[static_cast<unsigned char>(s[pos])]) return std::nullopt;
  std::optional<std::pair<int32_t, size_t>> best;
  size_t node = 0;
  for (size_t i = pos; i < s.size(); ++i) {
    int32_t child = -1;
    for (const auto& [byte, idx] : nodes_[node].next)
      if (byte == static_cast<unsigned char>(s[i])) child = idx;
    if (child < 0) break;
    node = static_cast<size_t>(child);
    if (nodes_[node].token >= 0) best = std::make_pair(nodes_[node].token, i + 1 - pos);
  }
  return best;
}

namespace {

struct Segment {
  std::string text;
  bool origin = false;
  int32_t token = -1;  // added-token id, or -1 for text still to tokenize
};

bool is_word_char(char32_t c) {
  return c == '_' || (c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0 : !is_unicode_whitespace(c));
}

char32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return utf8_next(s, i);
}

// Cuts `seg` at added-token matches; gaps keep seg's origin only when they start at offset 0.
void split_added(const Segment& seg, const AddedMatcher& m, const TokenizerData& d, std::vector<Segment>& out) {
  const std::string& s = seg.text;
  size_t pos = 0, prev = 0;
  while (pos < s.size()) {
    auto hit = m.longest_at(s, pos);
    if (!hit) {
      ++pos;
      continue;
    }
    const AddedToken& t = d.added[static_cast<size_t>(hit->first)];
    size_t start = pos, stop = pos + hit->second;
    pos = stop;
    if (t.single_word) {
      bool left_ok = start == 0 || !is_word_char(last_char(std::string_view(s).substr(0, start)));
      size_t k = stop;
      bool right_ok = stop == s.size() || !is_word_char(utf8_next(s, k));
      if (!left_ok || !right_ok) continue;
    }
    if (t.lstrip) {
      while (start > prev) {
        size_t b = start - 1;
        while (b > prev && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
        size_t k = b;
        if (!is_unicode_whitespace(utf8_next(s, k))) break;
        start = b;
      }
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t k = stop;
        if (!is_unicode_whitespace(utf8_next(s, k))) break;
        stop = k;
      }
      pos = stop;
    }
    if (start > prev) out.push_back(Segment{s.substr(prev, start - prev), seg.origin && prev == 0, -1});
    out.push_back(Segment{std::string(), false, t.id});
    prev = stop;
  }
  if (prev < s.size()) out.push_back(Segment{s.substr(prev), seg.origin && prev == 0, -1});
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + std::string(what) + " '" + path + "' (check the path)");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(what + ": invalid JSON (" + e.what() + ")");
  }
}

std::optional<std::string> token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return std::nullopt;
}

// HF ignores the "id" written in added_tokens: a token already in the model vocab keeps that id,
// others get the next id after the model vocab / previous added tokens (AddedVocabulary::add_tokens).
int32_t assign_added_id(const TokenizerData& d, const std::string& content, int64_t max_added) {
  const auto& v = d.model->vocab();
  if (auto it = v.find(content); it != v.end()) return it->second;
  auto model_size = static_cast<int64_t>(v.size());
  if (max_added < 0) return static_cast<int32_t>(model_size);
  return static_cast<int32_t>(max_added >= model_size || model_size == 0 ? max_added + 1 : model_size);
}

void load_added(TokenizerData& d, const json& list, const std::string& what) {
  if (list.is_null()) return;
  if (!list.is_array()) throw Error(what + ": added_tokens must be an array");
  int64_t max_added = -1;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& a = list[i];
    std::string w = what + ": added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string())
      throw Error(w + ": needs integer \"id\" and string \"content\"");
    std::string content = a["content"];
    if (content.empty() || d.added_by_content.count(content)) continue;
    bool special = a.value("special", false);
    AddedToken t{assign_added_id(d, content, max_added), content, special, a.value("lstrip", false),
                 a.value("rstrip", false), a.value("single_word", false), a.value("normalized", !special)};
    max_added = std::max<int64_t>(max_added, t.id);
    d.added_by_id[t.id] = d.added.size();
    d.added_by_content[t.content] = t.id;
    d.added.push_back(std::move(t));
  }
}

void build_matchers(TokenizerData& d) {
  for (size_t i = 0; i < d.added.size(); ++i) {
    const AddedToken& t = d.added[i];
    if (!t.normalized) {
      d.raw_matcher.add(t.content, static_cast<int32_t>(i));
    } else {
      std::string c = t.content;
      if (d.normalizer) d.normalizer->normalize(c);
      d.normalized_matcher.add(c, static_cast<int32_t>(i));
    }
  }
}

std::unique_ptr<BpeModel> load_model(const json& root, const std::string& what) {
  if (!root.contains("model") || !root["model"].is_object())
    throw Error(what + ": missing \"model\" object (not a Hugging Face tokenizer.json?)");
  const json& m = root["model"];
  std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>()
                     : m.contains("merges")                       ? "BPE"
                                                                  : "";
  if (type != "BPE")
    throw Error(what + ": model.type '" + type + "' is not supported (only BPE models are; Unigram/WordPiece/"
                "WordLevel tokenizers need a BPE export)");
  return std::make_unique<BpeModel>(m, what + ": model");
}

std::optional<int32_t> find_first(const TokenizerData& d, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (auto it = d.added_by_content.find(std::string_view(n)); it != d.added_by_content.end()) return it->second;
  return std::nullopt;
}

}  // namespace
}  // namespace tok

Tokenizer::Tokenizer() : d_(std::make_unique<tok::TokenizerData>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_json(const std::string& json_text, const std::string& what) {
  json root = tok::parse_json(json_text, what);
  if (!root.is_object()) throw Error(what + ": expected a JSON object at the top level");
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  auto& d = *t->d_;
  d.source = what;
  d.model = tok::load_model(root, what);
  auto get = [&](const char* k) { return root.contains(k) ? root[k] : json(); };
  d.normalizer = tok::make_normalizer(get("normalizer"), what + ": normalizer");
  d.pre_tokenizer = tok::make_pre_tokenizer(get("pre_tokenizer"), what + ": pre_tokenizer");
  d.post_processor = tok::make_post_processor(get("post_processor"), what + ": post_processor");
  d.decoder = tok::make_decoder(get("decoder"), what + ": decoder");
  tok::load_added(d, get("added_tokens"), what);
  tok::build_matchers(d);
  d.vocab_size = static_cast<int64_t>(d.model->id_to_token().size());
  for (const auto& a : d.added) d.vocab_size = std::max<int64_t>(d.vocab_size, int64_t{a.id} + 1);
  d.bos = tok::find_first(d, {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
  d.eos = tok::find_first(d, {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|im_end|>"});
  return t;
}

void Tokenizer::apply_config_json(const std::string& text, const std::string& what) {
  json c = tok::parse_json(text, what);
  if (!c.is_object()) throw Error(what + ": expected a JSON object at the top level");
  auto& d = *d_;
  if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) d.add_bos = c["add_bos_token"];
  if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) d.add_eos = c["add_eos_token"];
  for (auto [key, slot] : {std::pair{"bos_token", &d.bos}, std::pair{"eos_token", &d.eos}}) {
    if (!c.contains(key) || c[key].is_null()) continue;
    auto content = tok::token_content(c[key]);
    if (!content) throw Error(what + ": " + key + " must be a string or {\"content\": ...}");
    auto id = token_to_id(*content);
    if (!id) throw Error(what + ": " + key + " '" + *content + "' is not a token of the tokenizer");
    *slot = id;
  }
  if (c.contains("chat_template")) {
    const json& ct = c["chat_template"];
    if (ct.is_string()) d.chat_template = ct;
    else if (ct.is_array()) {
      for (const auto& e : ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) d.chat_template = e["template"];
      if (d.chat_template.empty() && !ct.empty() && ct[0].is_object() && ct[0].contains("template"))
        d.chat_template = ct[0]["template"];
    }
  }
  if (c.contains("model_max_length") && c["model_max_length"].is_number()) {
    double v = c["model_max_length"].get<double>();
    d.model_max_length = v >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(v);
  }
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  auto t = from_json(tok::read_file(path, "tokenizer file"), path);
  auto cfg = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfg, ec)) t->apply_config_json(tok::read_file(cfg.string(), "tokenizer config"), cfg.string());
  // Recent transformers save the template as chat_template.jinja; it wins over the config's.
  auto jinja = std::filesystem::path(path).parent_path() / "chat_template.jinja";
  if (std::filesystem::exists(jinja, ec)) t->d_->chat_template = tok::read_file(jinja.string(), "chat template");
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const auto& d = *d_;
  if (!tok::utf8_valid(text)) throw Error("Tokenizer::encode: input text is not valid UTF-8 (decode or clean it first)");
  std::vector<tok::Segment> raw, segs;
  tok::Segment whole{std::string(text), true, -1};
  if (d.raw_matcher.empty()) raw.push_back(std::move(whole));
  else tok::split_added(whole, d.raw_matcher, d, raw);
  for (auto& s : raw) {
    if (s.token >= 0) {
      segs.push_back(std::move(s));
      continue;
    }
    if (d.normalizer) d.normalizer->normalize(s.text);
    if (d.normalized_matcher.empty()) segs.push_back(std::move(s));
    else tok::split_added(s, d.normalized_matcher, d, segs);
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::Piece> pieces;
  for (auto& s : segs) {
    if (s.token >= 0) {
      ids.push_back(s.token);
      continue;
    }
    if (s.text.empty()) continue;
    pieces.clear();
    pieces.push_back(tok::Piece{std::move(s.text), s.origin});
    if (d.pre_tokenizer) d.pre_tokenizer->split(pieces);
    for (const auto& p : pieces) d.model->tokenize(p.text, ids);
  }
  if (add_special_tokens && d.post_processor) d.post_processor->process(ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const auto& d = *d_;
  const auto& names = d.model->id_to_token();
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = d.added_by_id.find(id); it != d.added_by_id.end()) {
      const auto& a = d.added[it->second];
      if (!(skip_special_tokens && a.special)) tokens.push_back(a.content);
      continue;
    }
    if (id >= 0 && static_cast<size_t>(id) < names.size() && !names[id].empty()) tokens.push_back(names[id]);
  }
  if (!d.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  d.decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

int64_t Tokenizer::vocab_size() const { return d_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = d_->added_by_content.find(token); it != d_->added_by_content.end()) return it->second;
  const auto& v = d_->model->vocab();
  if (auto it = v.find(token); it != v.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (auto it = d_->added_by_id.find(id); it != d_->added_by_id.end()) return d_->added[it->second].content;
  const auto& names = d_->model->id_to_token();
  if (id >= 0 && static_cast<size_t>(id) < names.size() && !names[id].empty()) return names[id];
  throw Error("Tokenizer::id_to_token: id " + std::to_string(id) + " is not in the vocabulary of " + d_->source);
}

std::optional<int32_t> Tokenizer::bos_id() const { return d_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return d_->eos; }
bool Tokenizer::add_bos() const { return d_->add_bos; }
bool Tokenizer::add_eos() const { return d_->add_eos; }
const std::string& Tokenizer::chat_template() const { return d_->chat_template; }
int64_t Tokenizer::model_max_length() const { return d_->model_max_length; }

bool Tokenizer::is_special(int32_t id) const {
  auto it = d_->added_by_id.find(id);
  return it != d_->added_by_id.end() && d_->added[it->second].special;
}

// ---- StreamDecoder: HF DecodeStream's scheme. The window keeps the ids since the last emitted
// boundary; the text of window + new id minus the window's own text is the new output, held back
// while it ends in U+FFFD (an incomplete character). ----
StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tok_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  window_.push_back(id);
  std::string text = tok_.decode(window_, skip_special_);
  static const std::string kRepl = "\xEF\xBF\xBD";
  bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, kRepl) == 0;
  if (text.size() <= prefix_.size() || incomplete) return {};
  std::string fresh = text.compare(0, prefix_.size(), prefix_) == 0 ? text.substr(prefix_.size()) : text;
  window_.erase(window_.begin(), window_.begin() + static_cast<long>(prefix_count_));
  prefix_count_ = window_.size();
  prefix_ = tok_.decode(window_, skip_special_);
  return fresh;
}

std::string StreamDecoder::flush() {
  std::string text = tok_.decode(window_, skip_special_);
  std::string fresh;
  if (text.size() > prefix_.size()) fresh = text.compare(0, prefix_.size(), prefix_) == 0 ? text.substr(prefix_.size()) : text;
  window_.clear();
  prefix_.clear();
  prefix_count_ = 0;
  return fresh;
}

}  // namespace ssm

// Byte-level BPE (see bpe.hpp). Byte<->unicode table: the printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ'
// map to the same code points, the other 68 bytes to U+0100 upward, in byte order (GPT-2's scheme).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/bpe.hpp"

#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>

#include "loader/checkpoint.hpp"
#include "ssm/error.hpp"

namespace ssm {
namespace {

using json = nlohmann::json;

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
  else s += char(0xe0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3f)), s += char(0x80 | (cp & 0x3f));
  return s;
}

struct ByteTable {
  std::string enc[256];
  std::unordered_map<std::string, uint8_t> dec;
  ByteTable() {
    uint32_t extra = 256;
    for (uint32_t b = 0; b < 256; b++) {
      bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
      enc[b] = utf8(printable ? b : extra++);
      dec[enc[b]] = uint8_t(b);
    }
  }
};
const ByteTable& table() {
  static const ByteTable t;
  return t;
}

// Splits a UTF-8 string into its characters.
std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xc2 && c <= 0xdf) n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 3, cp = c & 0x07;
    else return false;
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= s.size()) return false;
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

struct ByteLevelBpe::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

ByteLevelBpe::~ByteLevelBpe() = default;

std::unique_ptr<ByteLevelBpe> ByteLevelBpe::load(const std::string& path) { return from_json(read_text_file(path), path); }

std::unique_ptr<ByteLevelBpe> ByteLevelBpe::from_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(what + ": not valid JSON");
  if (!j.contains("model") || !j["model"].is_object()) throw Error(what + ": missing object field 'model'");
  const json& m = j["model"];
  std::string type = m.value("type", "BPE");
  if (type != "BPE") throw Error(what + ": model type '" + type + "' is not supported (this tokenizer handles byte-level BPE)");
  const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  if (!pre.is_object() || pre.value("type", "") != "ByteLevel" || pre.value("add_prefix_space", false) ||
      !pre.value("use_regex", true))
    throw Error(what + ": pre_tokenizer " + pre.dump().substr(0, 80) + " is not supported (ByteLevel with the GPT-2 regex only)");
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    throw Error(what + ": normalizer '" + j["normalizer"].value("type", "?") + "' is not supported");
  std::unique_ptr<ByteLevelBpe> t(new ByteLevelBpe());
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(what + ": model.vocab must be an object");
  int32_t max_id = -1;
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw Error(what + ": model.vocab['" + tok + "'] must be a non-negative id");
    t->vocab_[tok] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& a : j["added_tokens"]) {
      int32_t id = a.at("id").get<int32_t>();
      std::string c = a.at("content").get<std::string>();
      t->added_.push_back({c, id});
      t->vocab_[c] = id;
      max_id = std::max(max_id, id);
    }
  std::sort(t->added_.begin(), t->added_.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  t->id_to_tok_.assign(size_t(max_id + 1), "");
  t->special_.assign(size_t(max_id + 1), false);
  for (const auto& [tok, id] : t->vocab_) t->id_to_tok_[size_t(id)] = tok;
  if (j.contains("added_tokens"))
    for (const auto& a : j["added_tokens"]) t->special_[a["id"].get<size_t>()] = a.value("special", false);
  int32_t rank = 0;
  if (m.contains("merges"))
    for (const auto& mg : m["merges"]) {
      std::string key = mg.is_string() ? mg.get<std::string>() : mg.at(0).get<std::string>() + " " + mg.at(1).get<std::string>();
      t->merge_rank_.emplace(key, rank++);
    }
  int err;
  PCRE2_SIZE off;
  const char* pat = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  t->re_ = std::make_unique<Regex>();
  t->re_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!t->re_->code) throw Error("tokenizer: internal regex failed to compile");
  pcre2_jit_compile(t->re_->code, PCRE2_JIT_COMPLETE);
  return t;
}

void ByteLevelBpe::bpe(const std::string& piece, std::vector<int32_t>& out) const {
  auto direct = vocab_.find(piece);
  std::vector<std::string> parts = chars(piece);
  while (parts.size() > 1 && direct == vocab_.end()) {
    int32_t best = INT32_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); i++) {
      auto it = merge_rank_.find(parts[i] + " " + parts[i + 1]);
      if (it != merge_rank_.end() && it->second < best) best = it->second, at = i;
    }
    if (best == INT32_MAX) break;
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + long(at) + 1);
  }
  if (direct != vocab_.end() && parts.size() > 1) parts = {piece};
  for (const auto& p : parts) {
    auto it = vocab_.find(p);
    if (it == vocab_.end()) throw Error("tokenizer: piece '" + p + "' is not in the vocabulary and no merge builds it");
    out.push_back(it->second);
  }
}

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text) const {
  if (!valid_utf8(text)) throw Error("tokenizer: input is not valid UTF-8");
  std::vector<int32_t> out;
  const ByteTable& bt = table();
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_->code, nullptr);
  auto encode_plain = [&](std::string_view s) {
    size_t pos = 0;
    while (pos < s.size()) {
      int rc = pcre2_match(re_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      std::string u;
      for (size_t i = ov[0]; i < ov[1]; i++) u += bt.enc[static_cast<unsigned char>(s[i])];
      bpe(u, out);
      pos = ov[1] > pos ? ov[1] : pos + 1;
    }
  };
  size_t start = 0, i = 0;
  while (i < text.size()) {
    bool hit = false;
    for (const auto& [c, id] : added_)
      if (!c.empty() && text.compare(i, c.size(), c) == 0) {
        encode_plain(text.substr(start, i - start));
        out.push_back(id);
        i += c.size();
        start = i;
        hit = true;
        break;
      }
    if (!hit) i++;
  }
  encode_plain(text.substr(start));
  pcre2_match_data_free(md);
  return out;
}

std::string ByteLevelBpe::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_tok_.size()) throw Error("tokenizer: token id " + std::to_string(id) + " is out of range");
  const std::string& tok = id_to_tok_[size_t(id)];
  if (special_[size_t(id)]) return tok;
  std::string bytes;
  const ByteTable& bt = table();
  for (const auto& ch : chars(tok)) {
    auto it = bt.dec.find(ch);
    bytes += it == bt.dec.end() ? ch : std::string(1, char(it->second));
  }
  return bytes;
}

std::string ByteLevelBpe::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string s;
  for (int32_t id : ids)
    if (!(skip_special && is_special(id))) s += token_bytes(id);
  return s;
}

std::optional<int32_t> ByteLevelBpe::token_to_id(const std::string& tok) const {
  auto it = vocab_.find(tok);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

bool ByteLevelBpe::is_special(int32_t id) const { return id >= 0 && size_t(id) < special_.size() && special_[size_t(id)]; }

std::string BpeStreamDecoder::push(int32_t id) {
  pending_ += t_.token_bytes(id);
  // Emit the longest prefix that ends on a complete UTF-8 character.
  size_t cut = pending_.size();
  for (size_t back = 1; back <= 3 && back <= pending_.size(); back++) {
    unsigned char c = static_cast<unsigned char>(pending_[pending_.size() - back]);
    if ((c & 0xc0) == 0x80) continue;
    size_t need = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (need > back) cut = pending_.size() - back;
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string BpeStreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace ssm

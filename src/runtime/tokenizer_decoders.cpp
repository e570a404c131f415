// Decoders ("decoder": ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder,
// Sequence) and post-processors ("post_processor": TemplateProcessing, ByteLevel, RobertaProcessing,
// BertProcessing, Sequence) of tokenizer.json. Decoders rewrite the token strings the way HF's
// decode_chain does; post-processors add special-token ids around a single sequence.
#include <array>
#include <unordered_map>

#include "runtime/tokenizer_internal.hpp"
#include "ssm/error.hpp"

namespace ssm::tok {

std::pair<std::string, bool> read_pattern(const json& j, const std::string& where);
std::string metaspace_replacement(const json& j);
bool metaspace_prepends(const json& j, const std::string& where);

namespace {

class ByteLevelDec : public Decoder {
 public:
  ByteLevelDec() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      to_byte_[c] = static_cast<unsigned char>(b);
    }
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      size_t mark = bytes.size();
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        char32_t c = utf8_next(t, i);
        auto it = c < 512 ? to_byte_.find(c) : to_byte_.end();
        if (it == to_byte_.end()) ok = false;
        else bytes.push_back(static_cast<char>(it->second));
      }
      if (!ok) bytes.replace(mark, std::string::npos, t);
    }
    tokens.assign(1, utf8_lossy(bytes));
  }

 private:
  std::unordered_map<char32_t, unsigned char> to_byte_;
};

class MetaspaceDec : public Decoder {
 public:
  MetaspaceDec(std::string rep, bool prepends) : rep_(std::move(rep)), prepends_(prepends) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (!rep_.empty() && t.compare(p, rep_.size(), rep_) == 0) {
          if (!(i == 0 && prepends_)) out += ' ';  // HF drops every replacement in token 0
          p += rep_.size();
        } else {
          out += t[p++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool prepends_;
};

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

class ByteFallbackDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // consecutive <0xXX> bytes
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8_valid(pending)) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_val(t[3]) >= 0 && hex_val(t[4]) >= 0) {
        pending.push_back(static_cast<char>(hex_val(t[3]) * 16 + hex_val(t[4])));
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDec : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDec : public Decoder {
 public:
  StripDec(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && t.compare(b, content_.size(), content_) == 0; ++k) b += content_.size();
      for (size_t k = 0; k < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0; ++k)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDec : public Decoder {
 public:
  ReplaceDec(const std::string& pattern, bool literal, std::string content, const std::string& where)
      : re_(pattern, literal, where), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (auto& t : tokens) {
      m.clear();
      re_.find_all(t, m);
      std::string out;
      size_t last = 0;
      for (auto [b, e] : m) {
        if (e == b) continue;
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Regex re_;
  std::string content_;
};

class WordPieceDec : public Decoder {
 public:
  WordPieceDec(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(0, " ");
      }
      if (cleanup_) t = cleanup(t);
    }
  }

 private:
  static void replace_all(std::string& s, const std::string& a, const std::string& b) {
    for (size_t p = s.find(a); p != std::string::npos; p = s.find(a, p + b.size())) s.replace(p, a.size(), b);
  }
  static std::string cleanup(std::string s) {
    const char* pairs[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
                              {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (auto& p : pairs) replace_all(s, p[0], p[1]);
    return s;
  }
  std::string prefix_;
  bool cleanup_;
};

class BpeDec : public Decoder {
 public:
  explicit BpeDec(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      std::string rep = i + 1 == tokens.size() ? "" : " ";
      for (size_t p = t.find(suffix_); !suffix_.empty() && p != std::string::npos; p = t.find(suffix_, p + rep.size()))
        t.replace(p, suffix_.size(), rep);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDec : public Decoder {
 public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> v) : items_(std::move(v)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

// ---- post-processors ----
class TemplatePost : public PostProcessor {
 public:
  explicit TemplatePost(std::vector<std::vector<int32_t>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    for (const auto& p : parts_) {
      if (p.empty()) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), p.begin(), p.end());
    }
    ids = std::move(out);
  }

 private:
  std::vector<std::vector<int32_t>> parts_;  // empty vector = the sequence itself
};

class NoopPost : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class SequencePost : public PostProcessor {
 public:
  explicit SequencePost(std::vector<std::unique_ptr<PostProcessor>> v) : items_(std::move(v)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : items_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> make_template(const json& j, const std::string& where) {
  const json& single = j.value("single", json::array());
  const json& specials = j.value("special_tokens", json::object());
  if (!single.is_array()) throw Error(where + ".single: expected an array of template pieces");
  std::vector<std::vector<int32_t>> parts;
  for (size_t i = 0; i < single.size(); ++i) {
    const json& item = single[i];
    std::string w = where + ".single[" + std::to_string(i) + "]";
    if (item.contains("Sequence")) {
      parts.emplace_back();
    } else if (item.contains("SpecialToken")) {
      std::string name = item["SpecialToken"].value("id", std::string());
      if (!specials.contains(name) || !specials[name].contains("ids"))
        throw Error(w + ": special token '" + name + "' is missing from " + where + ".special_tokens");
      auto ids = specials[name]["ids"].get<std::vector<int32_t>>();
      if (ids.empty()) continue;
      parts.push_back(std::move(ids));
    } else {
      throw Error(w + ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return std::make_unique<TemplatePost>(std::move(parts));
}

std::unique_ptr<PostProcessor> make_wrap(const json& j, const std::string& where) {
  auto id_of = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer())
      throw Error(where + "." + key + ": expected [\"token\", id]");
    return j[key][1].get<int32_t>();
  };
  return std::make_unique<TemplatePost>(std::vector<std::vector<int32_t>>{{id_of("cls")}, {}, {id_of("sep")}});
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(where + ": expected an object with a string \"type\"");
  const std::string type = j["type"];
  if (type == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDec>(metaspace_replacement(j), metaspace_prepends(j, where));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (type == "Fuse") return std::make_unique<FuseDec>();
  if (type == "Strip")
    return std::make_unique<StripDec>(j.value("content", std::string(" ")), j.value("start", 0), j.value("stop", 0));
  if (type == "Replace") {
    auto [pat, literal] = read_pattern(j.value("pattern", json()), where);
    return std::make_unique<ReplaceDec>(pat, literal, j.value("content", std::string()), where);
  }
  if (type == "WordPiece") return std::make_unique<WordPieceDec>(j.value("prefix", std::string("##")), j.value("cleanup", true));
  if (type == "BPEDecoder") return std::make_unique<BpeDec>(j.value("suffix", std::string("</w>")));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> v;
    const json& list = j.value("decoders", json::array());
    for (size_t i = 0; i < list.size(); ++i) {
      auto d = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
      if (d) v.push_back(std::move(d));
    }
    return std::make_unique<SequenceDec>(std::move(v));
  }
  throw Error(where + ": unsupported decoder type '" + type +
              "' (supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, Sequence)");
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(where + ": expected an object with a string \"type\"");
  const std::string type = j["type"];
  if (type == "TemplateProcessing") return make_template(j, where);
  if (type == "ByteLevel") return std::make_unique<NoopPost>();
  if (type == "RobertaProcessing" || type == "BertProcessing") return make_wrap(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> v;
    const json& list = j.value("processors", json::array());
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
      if (p) v.push_back(std::move(p));
    }
    return std::make_unique<SequencePost>(std::move(v));
  }
  throw Error(where + ": unsupported post-processor type '" + type +
              "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
}

}  // namespace ssm::tok

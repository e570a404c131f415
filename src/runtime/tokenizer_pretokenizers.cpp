// Pre-tokenizers of tokenizer.json ("pre_tokenizer" field): ByteLevel, Split, Digits, Punctuation,
// Whitespace, WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit, Metaspace, Sequence. They cut
// text pieces into smaller pieces with HF's SplitDelimiterBehavior rules (Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous); ByteLevel also maps bytes to its 256-char alphabet.
#include <array>

#include "runtime/tokenizer_internal.hpp"
#include "ssm/error.hpp"

namespace ssm::tok {

std::pair<std::string, bool> read_pattern(const json& j, const std::string& where);

namespace {

const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  size_t b, e;
  bool match;
};
using Range = std::pair<size_t, size_t>;

// HF's find_matches + SplitDelimiterBehavior: spans alternate between matches and gaps.
std::vector<Range> apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Range> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& s : spans)
        if (!s.match) out.push_back({s.b, s.e});
      break;
    case SplitBehavior::Isolated:
      for (const auto& s : spans) out.push_back({s.b, s.e});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : spans) {
        if (s.match && !prev_match && !out.empty()) out.back().second = s.e;
        else out.push_back({s.b, s.e});
        prev_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const auto& s = spans[k];
        if (s.match && !prev_match && !out.empty()) out.back().first = s.b;
        else out.push_back({s.b, s.e});
        prev_match = s.match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::Contiguous:
      for (size_t k = 0; k < spans.size(); ++k) {
        const auto& s = spans[k];
        if (k > 0 && s.match == prev_match) out.back().second = s.e;
        else out.push_back({s.b, s.e});
        prev_match = s.match;
      }
      break;
  }
  return out;
}

std::vector<Span> matches_to_spans(const std::vector<Range>& m, size_t len, bool invert) {
  std::vector<Span> spans;
  if (len == 0) return {{0, 0, invert}};
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (b != prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != len) spans.push_back({prev, len, invert});
  return spans;
}

void emit_ranges(const Piece& p, const std::vector<Range>& ranges, std::vector<Piece>& out) {
  for (auto [b, e] : ranges)
    if (e > b) out.push_back(Piece{p.text.substr(b, e - b), p.origin && b == 0});
}

SplitBehavior parse_behavior(const json& j, const std::string& where, SplitBehavior dflt) {
  if (!j.contains("behavior")) return dflt;
  std::string b = j["behavior"].is_string() ? j["behavior"].get<std::string>() : "";
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  throw Error(where + ".behavior: unknown value '" + b +
              "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

class SplitPre : public PreTokenizer {
 public:
  SplitPre(const std::string& pattern, bool literal, SplitBehavior b, bool invert, const std::string& where)
      : re_(pattern, literal, where), behavior_(b), invert_(invert) {}
  void split(std::vector<Piece>& pieces) const override { split_pieces(pieces, re_, behavior_, invert_); }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

std::array<std::string, 256> make_byte_alphabet() {
  std::array<std::string, 256> table;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    utf8_append(table[b], printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++));
  }
  return table;
}

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), alphabet_(make_byte_alphabet()) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Regex, false, "ByteLevel");
  }
  void split(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
    if (re_) split_pieces(pieces, *re_, SplitBehavior::Isolated, false);
    for (auto& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped += alphabet_[c];
      p.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
  std::array<std::string, 256> alphabet_;
};

class MetaspacePre : public PreTokenizer {
 public:
  enum class Scheme { Always, First, Never };
  MetaspacePre(std::string rep, Scheme scheme, bool split) : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      std::string t;
      t.reserve(p.text.size() + rep_.size() * 4);
      for (char c : p.text) c == ' ' ? t += rep_ : t += c;
      bool starts = t.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == Scheme::Always || (scheme_ == Scheme::First && p.origin))) t.insert(0, rep_);
      if (!split_) {
        if (!t.empty()) out.push_back(Piece{std::move(t), p.origin});
        continue;
      }
      // MergedWithNext on every replacement occurrence: each piece starts at a replacement.
      size_t start = 0;
      for (size_t pos = t.find(rep_, 1); pos != std::string::npos && !rep_.empty(); pos = t.find(rep_, pos + rep_.size())) {
        if (pos > start) out.push_back(Piece{t.substr(start, pos - start), p.origin && start == 0});
        start = pos;
      }
      if (start < t.size()) out.push_back(Piece{t.substr(start), p.origin && start == 0});
    }
    pieces = std::move(out);
  }

 private:
  std::string rep_;
  Scheme scheme_;
  bool split_;
};

class WhitespaceSplitPre : public PreTokenizer {
 public:
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const auto& p : pieces) {
      size_t i = 0, start = std::string::npos;
      while (i < p.text.size()) {
        size_t at = i;
        bool ws = is_unicode_whitespace(utf8_next(p.text, i));
        if (ws && start != std::string::npos) {
          out.push_back(Piece{p.text.substr(start, at - start), p.origin && start == 0});
          start = std::string::npos;
        } else if (!ws && start == std::string::npos) {
          start = at;
        }
      }
      if (start != std::string::npos) out.push_back(Piece{p.text.substr(start), p.origin && start == 0});
    }
    pieces = std::move(out);
  }
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> v) : items_(std::move(v)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

// Unicode punctuation (\p{P}) plus ASCII punctuation, as Rust's is_ascii_punctuation || is_punctuation.
const char* kPunctClass = R"([\p{P}!-/:-@\[-`{-~])";

// Rust regex `\w+|[^\w\s]+` (HF Whitespace): its \w is Alphabetic + marks + Nd + Pc + Join_Control.
const char* kWhitespaceRegex =
    R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s]+)";

MetaspacePre::Scheme parse_scheme(const json& j, const std::string& where) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"];
    if (s == "always") return MetaspacePre::Scheme::Always;
    if (s == "first") return MetaspacePre::Scheme::First;
    if (s == "never") return MetaspacePre::Scheme::Never;
    throw Error(where + ".prepend_scheme: unknown value '" + s + "' (expected always, first or never)");
  }
  return j.value("add_prefix_space", true) ? MetaspacePre::Scheme::Always : MetaspacePre::Scheme::Never;
}

std::string replacement_of(const json& j) {
  if (j.contains("replacement") && j["replacement"].is_string()) return j["replacement"];
  if (j.contains("str_rep") && j["str_rep"].is_string()) return j["str_rep"];
  return "\xE2\x96\x81";
}

std::unique_ptr<PreTokenizer> make_regex_split(const std::string& re, SplitBehavior b, bool invert,
                                               const std::string& where) {
  return std::make_unique<SplitPre>(re, false, b, invert, where);
}

}  // namespace

void split_pieces(std::vector<Piece>& pieces, const Regex& re, SplitBehavior behavior, bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  std::vector<Range> m;
  for (const auto& p : pieces) {
    m.clear();
    re.find_all(p.text, m);
    if (m.empty() && !invert && behavior != SplitBehavior::Removed) {
      if (!p.text.empty()) out.push_back(p);
      continue;
    }
    emit_ranges(p, apply_behavior(matches_to_spans(m, p.text.size(), invert), behavior), out);
  }
  pieces = std::move(out);
}

std::string metaspace_replacement(const json& j) { return replacement_of(j); }
bool metaspace_prepends(const json& j, const std::string& where) {
  return parse_scheme(j, where) != MetaspacePre::Scheme::Never;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(where + ": expected an object with a string \"type\"");
  const std::string type = j["type"];
  if (type == "ByteLevel") return std::make_unique<ByteLevelPre>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split") {
    auto [pat, literal] = read_pattern(j.value("pattern", json()), where);
    return std::make_unique<SplitPre>(pat, literal, parse_behavior(j, where, SplitBehavior::Isolated),
                                      j.value("invert", false), where);
  }
  if (type == "Digits")
    return make_regex_split(j.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", SplitBehavior::Isolated,
                            false, where);
  if (type == "Punctuation")
    return make_regex_split(kPunctClass, parse_behavior(j, where, SplitBehavior::Isolated), false, where);
  if (type == "Whitespace") return make_regex_split(kWhitespaceRegex, SplitBehavior::Removed, true, where);
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPre>();
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> v;
    v.push_back(std::make_unique<WhitespaceSplitPre>());
    v.push_back(make_regex_split(kPunctClass, SplitBehavior::Isolated, false, where));
    return std::make_unique<SequencePre>(std::move(v));
  }
  if (type == "CharDelimiterSplit") {
    std::string d = j.value("delimiter", std::string(" "));
    return std::make_unique<SplitPre>(d, true, SplitBehavior::Removed, false, where);
  }
  if (type == "Metaspace")
    return std::make_unique<MetaspacePre>(replacement_of(j), parse_scheme(j, where), j.value("split", true));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> v;
    const json& list = j.value("pretokenizers", json::array());
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      if (p) v.push_back(std::move(p));
    }
    return std::make_unique<SequencePre>(std::move(v));
  }
  throw Error(where + ": unsupported pre-tokenizer type '" + type +
              "' (supported: ByteLevel, Split, Digits, Punctuation, Whitespace, WhitespaceSplit, "
              "BertPreTokenizer, CharDelimiterSplit, Metaspace, Sequence)");
}

}  // namespace ssm::tok

// Internal pieces of ssm::Tokenizer: UTF-8 and Unicode helpers, the PCRE2 regex wrapper, and the
// pipeline component interfaces (normalizer, pre-tokenizer, BPE model, post-processor, decoder)
// with factories that build them from tokenizer.json objects. Not part of the public API.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/tokenizer.hpp"

namespace ssm::tok {

using json = nlohmann::json;

// ---- UTF-8 / Unicode (tokenizer_unicode.cpp) ----
// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_valid_len(std::string_view s, size_t i);
bool utf8_valid(std::string_view s);
// Decodes one code point at s[i] (s must be valid UTF-8); advances i.
char32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, char32_t cp);
// Lossy UTF-8 conversion of arbitrary bytes: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);
enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string unicode_normalize(std::string_view s, NormForm form);
std::string unicode_lowercase(std::string_view s);
bool is_unicode_whitespace(char32_t cp);

// ---- PCRE2 regex (tokenizer_regex.cpp) ----
class Regex {
 public:
  // literal=true matches `pattern` as a plain string. Throws ssm::Error naming `what`.
  Regex(const std::string& pattern, bool literal, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // All non-overlapping matches (byte offsets [start, end)) in s, left to right.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// ---- pipeline components ----
struct Piece {
  std::string text;
  bool origin = false;  // starts at offset 0 of the original input (Metaspace prepend_scheme=first)
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece further (pieces are replaced in order; empty pieces are dropped).
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds special tokens around a single sequence (only called with add_special_tokens=true).
  virtual void process(std::vector<int32_t>& ids) const = 0;
};


std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where);
std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& where);

// Splits `pieces` by `re` matches with an HF SplitDelimiterBehavior name (shared by several
// pre-tokenizers).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
void split_pieces(std::vector<Piece>& pieces, const Regex& re, SplitBehavior behavior, bool invert);
// Reads a {"String": ..} or {"Regex": ..} pattern object; returns (pattern, is_literal).
std::pair<std::string, bool> read_pattern(const json& j, const std::string& where);

// Transparent string hashing so maps can be queried with string_view.
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>>;

// ---- BPE model (tokenizer_bpe.cpp) ----
class BpeModel {
 public:
  BpeModel(const json& model, const std::string& where);
  // Appends the ids for one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  const Vocab& vocab() const { return vocab_; }
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;  // byte length in the word; 0 once merged away
  };
  void initial_symbols(std::string_view word, std::vector<Symbol>& syms) const;
  void merge_all(std::vector<Symbol>& syms) const;
  std::optional<std::pair<uint32_t, int32_t>> find_merge(int32_t a, int32_t b) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges_;  // (a,b) -> (rank, new id)
  std::optional<int32_t> unk_id_;
  std::string continuing_prefix_, end_suffix_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xXX> ids for byte fallback, -1 if missing
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StrHash, std::equal_to<>> cache_;
};

// ---- added tokens ----
struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

// Byte trie of added-token contents matched leftmost-longest, as HF's AddedVocabulary does.
class AddedMatcher {
 public:
  void add(const std::string& content, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest token starting at s[pos]: (token index, length) or nullopt.
  std::optional<std::pair<int32_t, size_t>> longest_at(std::string_view s, size_t pos) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;
  };
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

struct TokenizerData {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  Vocab added_by_content;
  AddedMatcher raw_matcher, normalized_matcher;
  int64_t vocab_size = 0;
  std::optional<int32_t> bos, eos;
  bool add_bos = false, add_eos = false;
  std::string chat_template;
  int64_t model_max_length = 0;
  std::string source;
};

}  // namespace ssm::tok

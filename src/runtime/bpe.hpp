// Byte-level BPE tokenizer for tokenizer.json files whose pre-tokenizer is ByteLevel with the GPT-2
// split regex (GPT-2, GPT-NeoX/Mamba, the bundled model). Added tokens are matched in the raw text
// first, then each regex piece is mapped byte -> printable unicode and merged by merge rank.
// Other tokenizer.json pipelines are rejected with a clear error naming the component.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ssm {

class ByteLevelBpe {
 public:
  static std::unique_ptr<ByteLevelBpe> load(const std::string& tokenizer_json_path);
  static std::unique_ptr<ByteLevelBpe> from_json(const std::string& text, const std::string& what);
  ~ByteLevelBpe();

  // Throws ssm::Error on invalid UTF-8.
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // Raw bytes of one token (may be part of a UTF-8 character).
  std::string token_bytes(int32_t id) const;
  std::optional<int32_t> token_to_id(const std::string& tok) const;
  bool is_special(int32_t id) const;
  int64_t vocab_size() const { return int64_t(id_to_tok_.size()); }

 private:
  ByteLevelBpe() = default;
  void bpe(const std::string& piece_unicode, std::vector<int32_t>& out) const;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_tok_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::vector<std::pair<std::string, int32_t>> added_;  // content, id (longest first)
  std::vector<bool> special_;
  struct Regex;
  std::unique_ptr<Regex> re_;
};

// Incremental decoder for streaming: returns only complete UTF-8 text.
class BpeStreamDecoder {
 public:
  explicit BpeStreamDecoder(const ByteLevelBpe& t) : t_(t) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const ByteLevelBpe& t_;
  std::string pending_;
};

bool valid_utf8(std::string_view s);

}  // namespace ssm

// ssm::Tokenizer: loads a Hugging Face tokenizer.json (BPE model with its normalizer, pre-tokenizer,
// post-processor and decoder; added/special tokens) and encodes/decodes exactly like HF `tokenizers`.
// ssm::StreamDecoder turns generated ids into text incrementally, emitting only complete UTF-8 text
// that equals what decode() of the whole sequence produces. All errors are ssm::Error.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ssm {

namespace tok {
struct TokenizerData;  // internal: pipeline components, vocab, added tokens (tokenizer_internal.hpp)
}

class Tokenizer {
 public:
  // Loads tokenizer.json; reads tokenizer_config.json beside it when present (add_bos_token,
  // add_eos_token, bos_token, eos_token, chat_template, model_max_length), and chat_template.jinja
  // beside it, which takes precedence over the config's chat_template.
  static std::unique_ptr<Tokenizer> load(const std::string& tokenizer_json_path);
  // Parses tokenizer.json text; `what` names the source in error messages.
  static std::unique_ptr<Tokenizer> from_json(const std::string& json_text, const std::string& what);
  // Applies a tokenizer_config.json text (same fields as load() reads).
  void apply_config_json(const std::string& config_text, const std::string& what);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Like HF encode(text, add_special_tokens).ids; invalid UTF-8 throws ssm::Error.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Like HF decode(ids, skip_special_tokens); unknown ids are skipped as HF does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // highest id + 1 over vocab and added tokens
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws ssm::Error for an unknown id
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  bool add_bos() const;
  bool add_eos() const;
  const std::string& chat_template() const;  // empty if none
  int64_t model_max_length() const;          // 0 if unknown
  bool is_special(int32_t id) const;

 private:
  Tokenizer();
  std::unique_ptr<tok::TokenizerData> d_;
};

// Incremental detokenizer: push ids one at a time; returns only newly completed text.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string push(int32_t id);
  std::string flush();  // emits whatever is pending (incomplete bytes become U+FFFD, as decode() does)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> window_;  // ids from the last emitted boundary's context onwards
  std::string prefix_;           // decode of window_[0, prefix_count_)
  size_t prefix_count_ = 0;
};

}  // namespace ssm

// Tokenizer tests: exact agreement with HF `tokenizers` on every tests/data/tokenizers/<name>/
// (expected.json written by scripts/tokenizer_reference.mjs), StreamDecoder == decode(), API details,
// and clear ssm::Error on bad input. Set SSM_EXTRA_TOKENIZER_DIR to also check local tokenizer dirs
// (e.g. ones whose licence keeps them out of the repository) that have an expected.json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kRoot = fs::path(SSM_TEST_DATA_DIR) / "tokenizers";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<fs::path> tokenizer_dirs() {
  std::vector<fs::path> dirs;
  std::vector<fs::path> roots{kRoot};
  if (const char* extra = std::getenv("SSM_EXTRA_TOKENIZER_DIR")) roots.emplace_back(extra);
  for (const auto& r : roots) {
    if (!fs::is_directory(r)) continue;
    for (const auto& e : fs::directory_iterator(r))
      if (fs::exists(e.path() / "tokenizer.json") && fs::exists(e.path() / "expected.json")) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::string show(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

std::string stream_decode(const ssm::Tokenizer& t, const std::vector<int32_t>& ids, bool skip) {
  ssm::StreamDecoder sd(t, skip);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  return out + sd.flush();
}

}  // namespace

TEST(TokenizerReference, HasTokenizers) {
  ASSERT_FALSE(tokenizer_dirs().empty()) << "no tokenizer with expected.json under " << kRoot
                                         << " (run scripts/tokenizer_reference.mjs)";
}

TEST(TokenizerReference, MatchesHuggingFace) {
  for (const auto& dir : tokenizer_dirs()) {
    SCOPED_TRACE(dir.filename().string());
    auto tok = ssm::Tokenizer::load((dir / "tokenizer.json").string());
    json expected = json::parse(slurp(dir / "expected.json"));
    int failures = 0;
    for (const auto& c : expected["cases"]) {
      const std::string text = c["text"];
      auto want = c["ids"].get<std::vector<int32_t>>();
      auto want_sp = c["ids_special"].get<std::vector<int32_t>>();
      auto got = tok->encode(text, false);
      auto got_sp = tok->encode(text, true);
      std::string dec = tok->decode(want_sp, false), dec_skip = tok->decode(want_sp, true);
      bool ok = got == want && got_sp == want_sp && dec == c["decoded"].get<std::string>() && dec_skip == c["decoded_skip_special"].get<std::string>();
      if (!ok && ++failures <= 5) {
        ADD_FAILURE() << dir.filename() << " text=" << json(text).dump() << "\n ids  want " << show(want) << "\n      got  "
                      << show(got) << "\n sp   want " << show(want_sp) << "\n      got  " << show(got_sp)
                      << "\n decode want " << c["decoded"].dump() << "\n        got  " << json(dec).dump()
                      << "\n skip   want " << c["decoded_skip_special"].dump() << "\n        got  " << json(dec_skip).dump();
      }
    }
    EXPECT_EQ(failures, 0) << dir.filename() << ": " << failures << " mismatching cases";
  }
}

TEST(TokenizerStream, ConcatenationEqualsDecode) {
  for (const auto& dir : tokenizer_dirs()) {
    SCOPED_TRACE(dir.filename().string());
    auto tok = ssm::Tokenizer::load((dir / "tokenizer.json").string());
    json expected = json::parse(slurp(dir / "expected.json"));
    for (const auto& c : expected["cases"]) {
      auto ids = c["ids_special"].get<std::vector<int32_t>>();
      for (bool skip : {true, false})
        EXPECT_EQ(stream_decode(*tok, ids, skip), tok->decode(ids, skip)) << json(c["text"]).dump() << " skip=" << skip;
    }
  }
}

TEST(TokenizerStream, NeverEmitsPartialCharacters) {
  auto tok = ssm::Tokenizer::load((kRoot / "gpt-neox-20b" / "tokenizer.json").string());
  auto ids = tok->encode("Emoji: 😀 👨‍👩‍👧‍👦 東京", false);
  ssm::StreamDecoder sd(*tok);
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);
  }
}

TEST(TokenizerApi, VocabAndConfig) {
  auto tok = ssm::Tokenizer::load((kRoot / "qwen3-trimmed" / "tokenizer.json").string());
  EXPECT_EQ(tok->vocab_size(), 24000 + 26);  // trimmed vocab + 26 added tokens renumbered as HF does
  auto eot = tok->token_to_id("<|endoftext|>");
  ASSERT_TRUE(eot.has_value());
  EXPECT_EQ(tok->id_to_token(*eot), "<|endoftext|>");
  EXPECT_TRUE(tok->is_special(*eot));
  EXPECT_FALSE(tok->chat_template().empty());
  EXPECT_EQ(tok->eos_id(), tok->token_to_id("<|im_end|>"));
  EXPECT_FALSE(tok->add_bos());
  EXPECT_THROW(tok->id_to_token(-5), ssm::Error);
  EXPECT_FALSE(tok->token_to_id("definitely-not-a-token-xyz").has_value());
}

TEST(TokenizerApi, ConfigForms) {
  auto tok = ssm::Tokenizer::load((kRoot / "spm-bytefallback" / "tokenizer.json").string());
  tok->apply_config_json(R"({"add_bos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>",
      "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
      "model_max_length": 1e30})", "cfg");
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), tok->token_to_id("<s>"));
  EXPECT_EQ(tok->eos_id(), tok->token_to_id("</s>"));
  EXPECT_EQ(tok->chat_template(), "D");
  EXPECT_GT(tok->model_max_length(), 1000000);
  EXPECT_THROW(tok->apply_config_json(R"({"eos_token": "<nope>"})", "cfg"), ssm::Error);
}

TEST(TokenizerErrors, InvalidUtf8) {
  auto tok = ssm::Tokenizer::load((kRoot / "gpt-neox-20b" / "tokenizer.json").string());
  for (std::string bad : {std::string("abc\xff"), std::string("\xc3"), std::string("\xed\xa0\x80"),
                          std::string("\xe2\x82"), std::string("a\xc0\xafz")})
    EXPECT_THROW(tok->encode(bad), ssm::Error);
}

namespace {
void expect_error(const std::string& text, const std::string& needle) {
  try {
    ssm::Tokenizer::from_json(text, "t.json");
    ADD_FAILURE() << "no error for " << text;
  } catch (const ssm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(TokenizerErrors, MalformedFiles) {
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  expect_error("{not json", "invalid JSON");
  expect_error("[1,2]", "top level");
  expect_error("{}", "model");
  expect_error(R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}})", "merges[0]");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<u>"}})", "unk_token");
  expect_error("{" + model + R"(, "pre_tokenizer": {"type": "Fancy"}})", "Fancy");
  expect_error("{" + model + R"(, "normalizer": {"type": "Precompiled"}})", "normalizer");
  expect_error("{" + model + R"(, "decoder": {"type": "CTC"}})", "CTC");
  expect_error("{" + model + R"(, "post_processor": {"type": "Magic"}})", "post_processor");
  expect_error("{" + model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})",
               "regex");
  expect_error("{" + model + R"(, "added_tokens": [{"id": "x"}]})", "added_tokens[0]");
  EXPECT_THROW(ssm::Tokenizer::load("/nonexistent/dir/tokenizer.json"), ssm::Error);
}

TEST(TokenizerModel, MergesAsPairsAndIgnoreMerges) {
  auto t = ssm::Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3, "bb": 4},
      "merges": [["a", "b"], ["ab", "b"]]}})", "t");
  EXPECT_EQ(t->encode("abb"), (std::vector<int32_t>{3}));
  EXPECT_EQ(t->encode("bb"), (std::vector<int32_t>{1, 1}));
  auto t2 = ssm::Tokenizer::from_json(R"({"model": {"type": "BPE", "ignore_merges": true,
      "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3, "bb": 4}, "merges": [["a", "b"], ["ab", "b"]]}})", "t");
  EXPECT_EQ(t2->encode("bb"), (std::vector<int32_t>{4}));
  EXPECT_EQ(t2->vocab_size(), 5);
}

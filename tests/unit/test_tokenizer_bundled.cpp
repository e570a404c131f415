// Byte-level BPE against Hugging Face `tokenizers`: the bundled model's tokenizer.json must encode
// the prompts of models/default/reference.json to the ids HF produced, and decode HF's generated ids
// to HF's text. Invalid UTF-8 and unsupported pipelines are errors; streaming equals whole decoding.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"

using namespace ssm;

namespace {
const std::string kDir = std::string(SSM_SOURCE_DIR) + "/models/default";
}

TEST(BundledTokenizer, MatchesHfTokenizersOnBundledModel) {
  auto tok = Tokenizer::load(kDir + "/tokenizer.json");
  std::ifstream is(kDir + "/reference.json");
  auto ref = nlohmann::json::parse(is);
  for (const auto& g : ref["greedy"]) {
    EXPECT_EQ(tok->encode(g["prompt"].get<std::string>()), g["prompt_ids"].get<std::vector<int32_t>>()) << g["prompt"];
    auto ids = g["output_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids), g["text"].get<std::string>());
    StreamDecoder sd(*tok);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_EQ(streamed, tok->decode(ids));
  }
  EXPECT_EQ(tok->encode("<|im_start|>user"), (std::vector<int32_t>{1, tok->encode("user")[0]}));
}

TEST(BundledTokenizer, RoundTripsArbitraryUtf8) {
  auto tok = Tokenizer::load(kDir + "/tokenizer.json");
  for (std::string s : {"Hello, world!", "  spaces\t\ttabs\n\nnewlines", "naïve café — 東京 🙂👍🏽", "don't I'll 1234567 3.14", ""})
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_THROW(tok->encode(std::string("bad \xff utf8")), Error);
  EXPECT_THROW(tok->encode(std::string("\xe6\x9d")), Error);  // truncated character
  EXPECT_THROW(tok->encode(std::string("\xed\xa0\x80")), Error);  // surrogate
}

TEST(BundledTokenizer, RejectsUnsupportedFiles) {
  EXPECT_THROW(Tokenizer::from_json("{", "t.json"), Error);
  EXPECT_THROW(Tokenizer::from_json(R"({"model":{"type":"Unigram"}})", "t.json"), Error);
  EXPECT_THROW(Tokenizer::from_json(R"({"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"NoSuchPreTokenizer"}})", "t.json"), Error);
}

// Deterministic mutation run over the parsers (the libFuzzer target in tests/fuzz runs longer):
// random byte flips, truncations and splices of valid safetensors files and config.json texts must
// either parse or throw ssm::Error — never crash. Runs under ASan/UBSan builds too.
#include <gtest/gtest.h>

#include <random>

#include "loader/safetensors.hpp"
#include "ssm/config.hpp"
#include "ssm/error.hpp"

using namespace ssm;

namespace {

std::string valid_safetensors() {
  std::string h = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"__metadata__":{"format":"pt"}})";
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[size_t(i)] = char(uint64_t(h.size()) >> (8 * i));
  return s + h + std::string(22, '\x3f');
}

std::string mutate(std::string s, std::mt19937& g) {
  int ops = 1 + int(g() % 4);
  for (int k = 0; k < ops && !s.empty(); k++) {
    size_t i = g() % s.size();
    switch (g() % 5) {
      case 0: s[i] = char(g()); break;
      case 1: s.resize(i); break;
      case 2: s.insert(i, 1, "{}[]\",:0123456789-eE."[g() % 21]); break;
      case 3: s.erase(i, 1 + g() % 8); break;
      case 4: s[i] = char(s[i] ^ (1 << (g() % 8))); break;
    }
  }
  return s;
}

}  // namespace

TEST(ParserMutations, SafetensorsNeverCrash) {
  std::mt19937 g(1234);
  const std::string base = valid_safetensors();
  int accepted = 0, rejected = 0;
  for (int it = 0; it < 20000; it++) {
    std::string m = mutate(base, g);
    try {
      parse_safetensors(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "m.safetensors");
      accepted++;
    } catch (const Error& e) {
      rejected++;
      EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos);
    }
  }
  EXPECT_GT(rejected, 1000);  // the mutations really do break files
}

TEST(ParserMutations, ConfigNeverCrash) {
  std::mt19937 g(99);
  const std::string base = R"({"model_type":"mamba2","hidden_size":64,"num_hidden_layers":2,"vocab_size":100,
    "num_heads":4,"head_dim":32,"n_groups":2,"state_size":16,"time_step_limit":[0.0, Infinity],"chunk_size":64})";
  int rejected = 0;
  for (int it = 0; it < 20000; it++) {
    std::string m = mutate(base, g);
    try {
      parse_model_config(m, "c.json");
    } catch (const Error& e) {
      rejected++;
      EXPECT_NE(std::string(e.what()).find("c.json"), std::string::npos);
    }
  }
  EXPECT_GT(rejected, 1000);
}

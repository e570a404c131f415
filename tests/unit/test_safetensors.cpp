// safetensors parsing: valid files round-trip; every malformed header or offset is one clear error
// naming the file and tensor; sharded directories resolve through the index.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loader/checkpoint.hpp"
#include "loader/safetensors.hpp"
#include "ssm/error.hpp"
#include "support/tiny_model.hpp"

using namespace ssm;

namespace {

std::string file_image(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; i++) s[i] = char(n >> (8 * i));
  return s + header + std::string(data_bytes, '\x01');
}

std::string parse_error(const std::string& img) {
  try {
    parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "x.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, ParsesValidHeader) {
  std::string img = file_image(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[],"data_offsets":[24,26]},"__metadata__":{"format":"pt"}})", 26);
  auto h = parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "x");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors["a"].shape, (Shape{2, 3}));
  EXPECT_EQ(h.tensors["b"].dtype, DType::BF16);
  EXPECT_EQ(h.metadata["format"], "pt");
}

TEST(Safetensors, BadInputsGiveNamedErrors) {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  struct Case { std::string img, expect; };
  std::vector<Case> cases = {
      {std::string("\x05\x00\x00", 3), "too short"},
      {file_image(ok, 16).substr(0, 20), "runs past the end"},
      {file_image(ok, 15), "run past"},
      {file_image(ok, 17), "trailing bytes"},
      {file_image("{not json", 0), "not valid JSON"},
      {file_image("[1,2]", 0), "must be a JSON object"},
      {file_image(R"({"w":{"dtype":"F99","shape":[4],"data_offsets":[0,16]}})", 16), "unknown dtype 'F99'"},
      {file_image(R"({"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", 16), "need 20"},
      {file_image(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16), "non-negative"},
      {file_image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", 16), "before begin"},
      {file_image(R"({"w":{"dtype":"F32","shape":[4]}})", 16), "data_offsets"},
      {file_image(R"({"w":{"shape":[4],"data_offsets":[0,16]}})", 16), "dtype"},
      {file_image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "overlaps"},
      {file_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "gap"},
      {file_image(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})", 16), "absurdly large"},
  };
  std::string big(8, '\0');
  big[4] = 0x10;  // header length 2^36
  cases.push_back({big + "{}", "100 MB limit"});
  for (const auto& c : cases) {
    std::string msg = parse_error(c.img);
    EXPECT_NE(msg.find("x.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
}

TEST(Safetensors, WriteReadRoundTrip) {
  std::string dir = test::temp_dir("st");
  float v[6] = {1, 2, 3, 4, 5, 6};
  write_safetensors(dir + "/m.safetensors", {{"x", Tensor::from_f32(v, DType::F32, {2, 3})}, {"y", Tensor::from_f32(v, DType::BF16, {6})}});
  for (bool resident : {false, true}) {  // mmapped, and read into (huge-page) anonymous memory
    auto f = SafetensorsFile::open(dir + "/m.safetensors", resident);
    Tensor x = f->get("x");
    EXPECT_EQ(x.shape(), (Shape{2, 3}));
    EXPECT_FLOAT_EQ(x.f32()[5], 6.f);
    Tensor y = f->get("y").to_f32();
    EXPECT_FLOAT_EQ(y.f32()[2], 3.f);
    EXPECT_THROW(f->get("nope"), Error);
  }
}

TEST(Safetensors, TruncatedFileOnDisk) {
  std::string dir = test::temp_dir("st_trunc");
  float v[64] = {};
  write_safetensors(dir + "/m.safetensors", {{"x", Tensor::from_f32(v, DType::F32, {64})}});
  std::filesystem::resize_file(dir + "/m.safetensors", std::filesystem::file_size(dir + "/m.safetensors") - 10);
  for (bool resident : {false, true}) {
    try {
      SafetensorsFile::open(dir + "/m.safetensors", resident);
      FAIL() << "truncated file accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
}

TEST(Checkpoint, ShardedIndex) {
  std::string dir = test::temp_dir("shard");
  float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {{"a", Tensor::from_f32(a, DType::F32, {4})}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"b", Tensor::from_f32(b, DType::F16, {2})}});
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata":{"total_size":20},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})";
  Checkpoint ck = Checkpoint::open(dir);
  EXPECT_TRUE(ck.has("a"));
  EXPECT_FLOAT_EQ(ck.get("b").to_f32().f32()[1], 6.f);
  // An index naming a tensor the shard lacks is an error naming the index.
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"weight_map":{"a":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})";
  try {
    Checkpoint::open(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"missing.safetensors"}})";
  EXPECT_THROW(Checkpoint::open(dir), Error);
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"../../etc/passwd"}})";
  EXPECT_THROW(Checkpoint::open(dir), Error);
}

TEST(Checkpoint, EmptyDirectory) {
  std::string dir = test::temp_dir("empty");
  std::ofstream(dir + "/pytorch_model.bin") << "x";
  try {
    Checkpoint::open(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pytorch_model.bin"), std::string::npos) << e.what();
  }
}

// `ssm chat` end to end with the bundled model: two user lines piped on stdin give two replies, and
// the second turn feeds only the new part of the rendered conversation (the recurrent state after the
// first reply is kept); a model without a chat template is a one-line error pointing to ssm generate.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <unistd.h>

#include "support/process.hpp"

using namespace ssm;

namespace {

struct Result {
  int rc;
  std::string out, err;
};

Result chat(const std::string& input, const std::string& args) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ssm_chat_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  { std::ofstream(dir / "in.txt", std::ios::binary) << input; }
  std::string cmd = std::string(SSM_CLI_PATH) + " chat " + args + " < " + (dir / "in.txt").string() + " 2> " +
                    (dir / "err.txt").string();
  auto r = test::run_command(cmd);
  std::stringstream err;
  err << std::ifstream(dir / "err.txt").rdbuf();
  fs::remove_all(dir);
  return {r.rc, r.out, err.str()};
}

const std::string kModel = std::string(SSM_SOURCE_DIR) + "/models/default";

}  // namespace

TEST(CliChat, TwoTurnsReuseTheState) {
  Result r = chat("Hello there\nWhat did I just say?\n", "-m " + kModel + " --temperature 0 -n 12 --verbose");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  std::regex re(R"(\[chat\] turn (\d+): fed (\d+) prompt tokens \(full conversation (\d+) tokens, state (\w+)\))");
  std::vector<std::smatch> turns;
  for (auto it = std::sregex_iterator(r.err.begin(), r.err.end(), re); it != std::sregex_iterator(); ++it) turns.push_back(*it);
  ASSERT_EQ(turns.size(), 2u) << r.err;
  EXPECT_EQ(turns[0][4].str(), "rebuilt");
  EXPECT_EQ(std::stoi(turns[0][2].str()), std::stoi(turns[0][3].str()));
  EXPECT_EQ(turns[1][4].str(), "reused");
  int fed = std::stoi(turns[1][2].str()), full = std::stoi(turns[1][3].str());
  EXPECT_GT(fed, 0);
  EXPECT_LT(fed, full);  // only the new suffix was fed
  EXPECT_GT(full, std::stoi(turns[0][3].str()) + fed - 1);

  // Greedy decoding is deterministic: same input, same replies.
  Result again = chat("Hello there\nWhat did I just say?\n", "-m " + kModel + " --temperature 0 -n 12");
  ASSERT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
}

TEST(CliChat, ModelWithoutTemplateIsAClearError) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ssm_chat_notemplate_" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    fs::create_symlink(fs::path(kModel) / f, dir / f);
  Result r = chat("Hi\n", "-m " + dir.string());
  fs::remove_all(dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("no chat template"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ssm generate"), std::string::npos) << r.err;
}

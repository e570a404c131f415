// Deterministic mutation run over the chat template engine (the libFuzzer target in tests/fuzz runs
// longer): byte flips, truncations, splices of Jinja syntax and of pieces of other templates, applied
// to the 24 real templates of tests/data/chat_templates, must either render or throw ssm::Error —
// never another exception, a crash or a hang. Runs under ASan/UBSan builds too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "runtime/chat_template.hpp"
#include "ssm/error.hpp"

using namespace ssm;
using ojson = nlohmann::ordered_json;

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> out;
  const std::string dir = std::string(SSM_TEST_DATA_DIR) + "/chat_templates";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

const char* kSnippets[] = {"{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{% endif %}", "{% endfor %}",
                           "{% else %}", "{% for x in messages %}", "{% if x %}", "|", "(", ")", "[", "]",
                           "'", "\"", ".", ",", "~", "+", "*", "**", "//", "%", "not ", " in ", " is ",
                           "loop.", "ns.", "{% set ns = namespace(a=1) %}", "{% macro m() %}", "{% endmacro %}",
                           "range(99)", "caller()", "{% break %}", "\n", "-1", "1e308", "9999999999999999999"};

std::string mutate(std::string s, const std::vector<std::string>& all, std::mt19937& g) {
  int ops = 1 + int(g() % 4);
  for (int k = 0; k < ops; k++) {
    size_t i = s.empty() ? 0 : g() % s.size();
    switch (g() % 6) {
      case 0:
        if (!s.empty()) s[i] = char(g());
        break;
      case 1: s.resize(i); break;
      case 2: s.insert(i, kSnippets[g() % (sizeof kSnippets / sizeof *kSnippets)]); break;
      case 3:
        if (!s.empty()) s.erase(i, 1 + g() % 16);
        break;
      case 4: {  // splice a piece of another template
        const std::string& o = all[g() % all.size()];
        size_t b = g() % o.size();
        s.insert(i, o.substr(b, 1 + g() % 64));
        break;
      }
      case 5: {  // duplicate a piece of itself
        if (s.empty()) break;
        size_t b = g() % s.size();
        s.insert(i, s.substr(b, 1 + g() % 128));
        break;
      }
    }
  }
  return s;
}

}  // namespace

TEST(ChatTemplateMutations, OnlySsmErrors) {
  const auto all = corpus();
  ASSERT_EQ(all.size(), 24u);
  const ojson ctx = ojson::parse(R"({
    "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Yo", "tool_calls": [{"type": "function",
                   "function": {"name": "f", "arguments": {"a": 1}}}]},
                 {"role": "tool", "content": "1"}, {"role": "user", "content": "More"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  std::mt19937 g(20240726);
  int parsed = 0, rendered = 0, rejected = 0;
  for (int it = 0; it < 20000; it++) {
    std::string m = mutate(all[size_t(it) % all.size()], all, g);
    try {
      auto t = ChatTemplate::parse(m, "m.jinja");
      t.set_fixed_time(0);
      parsed++;
      t.render_context(ctx);
      rendered++;
    } catch (const Error& e) {
      rejected++;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-ssm::Error exception: " << e.what() << "\n--- template ---\n" << m;
    }
  }
  EXPECT_GT(rejected, 5000);  // the mutations really do break templates
  EXPECT_GT(rendered, 1000);  // ... and many still render
}

// Chat template engine: every case of tests/data/chat_templates/expected.json (renderings of 24 real
// Hugging Face templates by @huggingface/jinja, cross-checked with Python Jinja2) must come out byte for
// byte; raise_exception cases must throw ssm::Error with exactly that message. Then the Jinja features
// one by one, error messages (template name, line, column) and resource limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "runtime/chat_template.hpp"
#include "runtime/tokenizer.hpp"
#include "ssm/error.hpp"

using namespace ssm;
using ojson = nlohmann::ordered_json;

namespace {

const std::string kDir = std::string(SSM_TEST_DATA_DIR) + "/chat_templates";
constexpr std::time_t kFixedNow = 1721995200;  // 2024-07-26T12:00:00Z, as the reference pins it

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const ojson& expected() {
  static const ojson j = ojson::parse(read(kDir + "/expected.json"));
  return j;
}

// Renders `src` with `ctx` (a JSON object text).
std::string R(const std::string& src, const std::string& ctx = "{}") {
  auto t = ChatTemplate::parse(src, "t.jinja");
  t.set_fixed_time(kFixedNow);
  return t.render_context(ojson::parse(ctx));
}

std::string error_of(const std::string& src, const std::string& ctx = "{}") {
  try {
    R(src, ctx);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(ChatTemplate, CorpusMatchesReference) {
  const auto& templates = expected().at("templates");
  ASSERT_EQ(templates.size(), 24u);
  size_t cases = 0;
  for (auto it = templates.begin(); it != templates.end(); ++it) {
    const std::string name = it.key();
    auto t = ChatTemplate::parse(read(kDir + "/" + name + ".jinja"), name + ".jinja");
    t.set_fixed_time(kFixedNow);
    for (const auto& c : it.value()) {
      SCOPED_TRACE(name + " " + c.at("id").get<std::string>());
      ++cases;
      if (c.contains("output")) {
        std::string got;
        try {
          got = t.render_context(c.at("context"));
        } catch (const Error& e) {
          ADD_FAILURE() << "threw: " << e.what();
          continue;
        }
        EXPECT_EQ(got, c.at("output").get<std::string>());
      } else if (c.contains("raise_exception")) {
        try {
          t.render_context(c.at("context"));
          ADD_FAILURE() << "expected raise_exception";
        } catch (const Error& e) {
          EXPECT_EQ(std::string(e.what()), c.at("raise_exception").get<std::string>());
        }
      } else {
        EXPECT_THROW(t.render_context(c.at("context")), Error);
      }
    }
  }
  EXPECT_EQ(cases, 354u);
}

TEST(ChatTemplate, RenderApiPassesTransformersContext) {
  auto t = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}|{{ tools is none }}|{{ enable_thinking }}");
  ChatRenderOptions o;
  o.bos_token = "<s>";
  o.extra = {{"enable_thinking", false}};
  ojson msgs = ojson::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(t.render(msgs, o), "<s><user>hi<assistant>|True|False");
  o.add_generation_prompt = false;
  EXPECT_EQ(t.render(msgs, o), "<s><user>hi|True|False");
}

TEST(ChatTemplate, WhitespaceControl) {
  // trim_blocks + lstrip_blocks as transformers configures Jinja2
  EXPECT_EQ(R("{% if true %}\n  a\n{% endif %}\nb"), "  a\nb");
  EXPECT_EQ(R("x\n    {% if true %}y{% endif %}"), "x\ny");
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(R("a {{- 'b' -}} c"), "abc");
  EXPECT_EQ(R("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(R("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(R("{# c #}\nx"), "x");
  EXPECT_EQ(R("{{ 'a' }}\nb"), "a\nb");  // no trim after expressions
  EXPECT_EQ(R("a\n"), "a");              // one trailing newline dropped, as Jinja2 does
  EXPECT_EQ(R("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(ChatTemplate, Statements) {
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
              R"({"xs":["a","b"]})"),
            "10TrueFalse2;21FalseTrue2;");
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", R"({"d":{"b":1,"a":2}})"), "b=1,a=2,");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", R"({"d":{"x":1,"y":2}})"), "xy");
  EXPECT_EQ(R("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(R("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "13");
  EXPECT_EQ(R("{% for x in [1,2,3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "1");
  EXPECT_EQ(R("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}"), "c");
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");  // loop scope
  EXPECT_EQ(R("{% set ns = namespace(x=1) %}{% for i in [1,2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{% set s %}x{{ 1 + 1 }}{% endset %}[{{ s }}]"), "[x2]");
  EXPECT_EQ(R("{% set s | upper %}ab{% endset %}{{ s }}"), "AB");
  EXPECT_EQ(R("{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"), "1-d2-3");
  EXPECT_EQ(R("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(R("{% filter upper %}abc{% endfilter %}"), "ABC");
  EXPECT_EQ(R("{% generation %}x{% endgeneration %}"), "x");
}

TEST(ChatTemplate, Expressions) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }}"),
            "7 9 3 -4 1 1024 3.5");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 2 }}"), "a1None ab [1, 2] abab");
  EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ not 1 }}"),
            "True True True True False");
  EXPECT_EQ(R("{{ 'y' if x else 'n' }}{{ 'y' if 1 }}"), "ny");
  EXPECT_EQ(R("{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ [1,2,3][-1] }} {{ [1,2,3,4][1::2] }} {{ '日本語'[1] }}"),
            "el olleh 3 [2, 4] 本");
  EXPECT_EQ(R("{{ {'a': [1, 'x', none, true, 1.5]} }}"), "{'a': [1, 'x', None, True, 1.5]}");
  EXPECT_EQ(R("{{ x.y }}{{ x['y'] }}{{ x.z is defined }}{{ x.y.z is defined }}", R"({"x":{"y":"v"}})"), "vvFalseFalse");
  EXPECT_EQ(R("{{ 'a' 'b' }}"), "ab");
  EXPECT_EQ(R("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 10 / 4 }}"), "1.0 0.30000000000000004 1e+20 2.5");
}

TEST(ChatTemplate, Methods) {
  EXPECT_EQ(R("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}"), "a b|a|a|a");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'aBc'.upper() }}{{ 'aBc'.lower() }}"),
            "TrueTrueABCabc");
  EXPECT_EQ(R("{{ 'hello world'.title() }} {{ 'a-b'.replace('-', '+') }} {{ 'abc'.find('c') }}"), "Hello World a+b 2");
  EXPECT_EQ(R("{{ d.get('a') }} {{ d.get('z', 0) }} {{ d.get('z') }} {{ d.keys() | list }} {{ d.values() | list }}",
              R"({"d":{"a":1}})"),
            "1 0 None ['a'] [1]");
}

TEST(ChatTemplate, Filters) {
  EXPECT_EQ(R("{{ '  x ' | trim }}|{{ [1,2,3] | length }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'ab cd' | title }}"),
            "x|3|AB|ab|Ab Cd");
  EXPECT_EQ(R("{{ u | default('d') }}{{ '' | default('e', true) }}{{ [1, 2] | join('-') }}{{ [1,2] | first }}{{ [1,2] | last }}"),
            "de1-212");
  EXPECT_EQ(R("{{ xs | map(attribute='n') | join(',') }}|{{ xs | selectattr('n', 'equalto', 2) | list | length }}"
              "|{{ xs | rejectattr('n', 'equalto', 2) | map(attribute='n') | list }}",
              R"({"xs":[{"n":1},{"n":2}]})"),
            "1,2|1|[1]");
  EXPECT_EQ(R("{{ ['a', 'b', 'c'] | reject('equalto', 'b') | join }}|{{ [0, 1, 2] | select | list }}|{{ ['a'] | map('upper') | list }}"),
            "ac|[1, 2]|['A']");
  EXPECT_EQ(R("{{ 'abc' | list }}{{ 5 | string }}{{ '42' | int + 1 }}{{ 'x' | int }}{{ 'hello' | capitalize }}{{ 'aXa' | replace('a', 'b') }}"),
            "['a', 'b', 'c']5430HellobXb");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b\n\n  c|  a\n  b");
  EXPECT_EQ(R("{{ [3, 1, 2, 1] | unique | list }} {{ [3, 1, 2] | sort }} {{ {'b': 1, 'a': 2} | dictsort }}"),
            "[3, 1, 2] [1, 2, 3] [('a', 2), ('b', 1)]");
  EXPECT_EQ(R("{{ '<a>' | safe }}{{ {'a': 1} | items | list }}"), "<a>[('a', 1)]");
}

TEST(ChatTemplate, ToJsonLikeTransformers) {
  const std::string ctx = R"({"v":{"b":[1,2.5,"é\"\n"],"a":null,"c":{},"d":[],"e":true}})";
  EXPECT_EQ(R("{{ v | tojson }}", ctx), R"({"b": [1, 2.5, "é\"\n"], "a": null, "c": {}, "d": [], "e": true})");
  EXPECT_EQ(R("{{ v.b | tojson(indent=2) }}", ctx), "[\n  1,\n  2.5,\n  \"é\\\"\\n\"\n]");
  EXPECT_EQ(R("{{ v.b | tojson(4) }}", ctx), "[\n    1,\n    2.5,\n    \"é\\\"\\n\"\n]");
  EXPECT_EQ(R("{{ v | tojson(sort_keys=true) }}", ctx), R"({"a": null, "b": [1, 2.5, "é\"\n"], "c": {}, "d": [], "e": true})");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}"), R"("\u00e9")");
}

TEST(ChatTemplate, Tests) {
  EXPECT_EQ(R("{{ x is defined }}{{ y is undefined }}{{ n is none }}{{ s is string }}{{ d is mapping }}{{ l is iterable }}"
              "{{ 1 is number }}{{ 1 is integer }}{{ 1.5 is float }}{{ true is boolean }}{{ false is false }}"
              "{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ s is not none }}{{ 'A' is upper }}",
              R"({"x":1,"n":null,"s":"a","d":{},"l":[]})"),
            "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
}

TEST(ChatTemplate, Globals) {
  EXPECT_EQ(R("{{ range(3) | list }}{{ range(1, 7, 2) | list }}"), "[0, 1, 2][1, 3, 5]");
  EXPECT_EQ(R("{{ strftime_now('%d %b %Y') }}"), "26 Jul 2024");
  EXPECT_EQ(R("{{ dict(a=1) }}"), "{'a': 1}");
  try {
    R("{{ raise_exception('No system role, ' ~ 'please') }}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "No system role, please");
  }
}

TEST(ChatTemplate, SyntaxErrorsNameTemplateLineAndColumn) {
  EXPECT_EQ(error_of("ab\n{% if x %}\n  {{ y | nosuchfilter }}{% endif %}"), "t.jinja: line 3, column 10: unknown filter 'nosuchfilter'");
  EXPECT_EQ(error_of("{% if x %}x"), "t.jinja: line 1, column 12: unexpected end of template: missing '{% endif %}'");
  EXPECT_EQ(error_of("x\n {{ 1 + }}"), "t.jinja: line 2, column 9: unexpected '}}' in expression");
  EXPECT_EQ(error_of("{{ x is nosuchtest }}"), "t.jinja: line 1, column 9: unknown test 'nosuchtest'");
  EXPECT_EQ(error_of("{% foo %}"), "t.jinja: line 1, column 4: unknown or misplaced tag 'foo'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "t.jinja: line 1, column 4: unterminated string literal");
  EXPECT_EQ(error_of("{{ x "), "t.jinja: line 1, column 1: unclosed tag (missing '}}')");
  EXPECT_EQ(error_of("{% endfor %}"), "t.jinja: line 1, column 4: unknown or misplaced tag 'endfor'");
}

TEST(ChatTemplate, RuntimeErrors) {
  EXPECT_EQ(error_of("\n  {{ x + 1 }}"), "t.jinja: line 2, column 8: 'x' is undefined");
  EXPECT_EQ(error_of("{{ x.y.z }}"), "t.jinja: line 1, column 4: 'x' is undefined");
  EXPECT_EQ(error_of("{{ 1 / 0 }}"), "t.jinja: line 1, column 6: division by zero");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t.jinja: line 1, column 8: unsupported operand type(s) for +: 'str' and 'int'");
  EXPECT_NE(error_of("{{ nope() }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ [1].append(2) }}").find("immutable"), std::string::npos);
}

TEST(ChatTemplate, ResourceLimits) {
  // Unbounded work, output and recursion end in a clear error instead of a hang or a stack overflow.
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}").find("too many loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("too deep"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}").find("too large"), std::string::npos);
  std::string deep(5000, '(');
  EXPECT_NE(error_of("{{ " + deep + "1" + std::string(5000, ')') + " }}").find("nested too deeply"), std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  EXPECT_NE(error_of(blocks).find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplate, BundledModelTemplateFromJinjaFile) {
  // transformers 5 writes chat_template.jinja beside tokenizer.json; Tokenizer::load prefers it.
  auto tok = Tokenizer::load(std::string(SSM_SOURCE_DIR) + "/models/default/tokenizer.json");
  ASSERT_FALSE(tok->chat_template().empty());
  auto t = ChatTemplate::parse(tok->chat_template(), "default");
  ojson msgs = ojson::array({{{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(t.render(msgs), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, JinjaFileTakesPrecedenceOverConfig) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ssm_chat_template_src_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(std::string(SSM_SOURCE_DIR) + "/models/default/tokenizer.json", dir / "tokenizer.json");
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                                                        {"name": "default", "template": "D"}]})";
  EXPECT_EQ(Tokenizer::load((dir / "tokenizer.json").string())->chat_template(), "D");
  std::ofstream(dir / "chat_template.jinja") << "J";
  EXPECT_EQ(Tokenizer::load((dir / "tokenizer.json").string())->chat_template(), "J");
  fs::remove_all(dir);
}

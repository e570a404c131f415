// libFuzzer target: the chat template engine must either render the input template or throw
// ssm::Error — never crash, hang, overflow the stack or read out of bounds.
// Build: cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSSM_FUZZ=ON && cmake --build build-fuzz
// Run:   build-fuzz/tests/fuzz_chat_template -max_total_time=60 tests/data/chat_templates
//        (the corpus templates make good seeds)
#include <cstdint>
#include <string>

#include "runtime/chat_template.hpp"
#include "ssm/error.hpp"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi {{ x }} \n\t 'q' \"d\" é"},
      {"role": "assistant", "content": " ok ", "tool_calls": [{"type": "function",
        "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}}]},
      {"role": "tool", "content": "42", "name": "f"},
      {"role": "user", "content": ""}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
      "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string src(reinterpret_cast<const char*>(data), size);
  try {
    auto t = ssm::ChatTemplate::parse(src, "fuzz.jinja");
    t.set_fixed_time(0);
    (void)t.render_context(context());
  } catch (const ssm::Error&) {
  }
  return 0;
}

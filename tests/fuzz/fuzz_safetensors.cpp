// libFuzzer target: safetensors header/offset validation and config.json parsing must either accept
// the input or throw ssm::Error — never crash, hang or read out of bounds.
// Build: cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSSM_FUZZ=ON && cmake --build build-fuzz
// Run:   build-fuzz/tests/fuzz_safetensors -max_total_time=60   (scripts/fuzz.sh does both targets)
#include <cstdint>
#include <string>

#include "loader/safetensors.hpp"
#include "ssm/config.hpp"
#include "ssm/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // First byte picks the parser so one corpus exercises both.
  const uint8_t* p = data + 1;
  size_t n = size - 1;
  try {
    if (data[0] & 1) {
      auto h = ssm::parse_safetensors(p, n, "fuzz.safetensors");
      (void)h;
    } else {
      auto c = ssm::parse_model_config(std::string(reinterpret_cast<const char*>(p), n), "fuzz/config.json");
      (void)c;
    }
  } catch (const ssm::Error&) {
  }
  return 0;
}

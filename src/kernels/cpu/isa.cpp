// Runtime ISA selection for the Highway kernels: by default the widest the CPU supports; SSM_ISA
// (environment, read at first use) or set_isa() restricts every Highway kernel to one target so
// tests can cover each ISA the machine offers.
#include <hwy/highway.h>
#include <hwy/targets.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu/cpu.hpp"
#include "ssm/error.hpp"

namespace ssm::kernels::cpu {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct EnvIsa {
  EnvIsa() {
    if (const char* e = std::getenv("SSM_ISA"); e && *e) set_isa(e);
  }
};

}  // namespace

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) out.push_back(lower(hwy::TargetName(t)));
  return out;
}

void set_isa(const std::string& name) {
  if (name.empty() || lower(name) == "auto") {
    hwy::SetSupportedTargetsForTest(0);
    return;
  }
  hwy::SetSupportedTargetsForTest(0);
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (lower(hwy::TargetName(t)) == lower(name)) {
      hwy::SetSupportedTargetsForTest(t);
      return;
    }
  std::string have;
  for (const auto& s : available_isas()) have += (have.empty() ? "" : ", ") + s;
  throw Error("SSM_ISA/--isa '" + name + "' is not available on this CPU/build (available: " + have + ", auto)");
}

std::string current_isa() {
  return lower(hwy::TargetName(hwy::SupportedAndGeneratedTargets().front()));
}

void init_isa_from_env() { static EnvIsa once; }

}  // namespace ssm::kernels::cpu

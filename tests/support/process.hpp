// Runs a shell command for the CLI end-to-end tests and returns its exit status and stdout.
#pragma once
#include <string>

namespace ssm::test {

struct CommandResult {
  int rc;
  std::string out;
};

CommandResult run_command(const std::string& cmd);

}  // namespace ssm::test

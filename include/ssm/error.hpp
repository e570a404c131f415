// ssm::Error: the one exception type the library throws for bad input, bad files and resource
// failures. Messages name the file / tensor / field, what was expected and what was found, so a
// user can act on one line. The library never aborts the process on input it was given.
#pragma once
#include <stdexcept>
#include <string>

namespace ssm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace ssm

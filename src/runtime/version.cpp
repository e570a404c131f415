// Library version string (kept here so the runtime library always has at least one source).
namespace ssm {
const char* version() { return "0.1.0"; }
}  // namespace ssm

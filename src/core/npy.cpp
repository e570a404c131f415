// .npy read/write (see npy.hpp; format: numpy.lib.format, version 1.0 header).
#include "core/npy.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

#include "ssm/error.hpp"

namespace ssm {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); i++) {
    dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    n *= shape[i];
  }
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + h.size() + 1;
  h += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream os(path, std::ios::binary | std::ios::trunc);
  if (!os) throw Error(path + ": cannot open for writing");
  const char magic[] = "\x93NUMPY\x01\x00";
  os.write(magic, 8);
  uint16_t hl = uint16_t(h.size());
  os.put(char(hl & 0xff));
  os.put(char(hl >> 8));
  os.write(h.data(), std::streamsize(h.size()));
  os.write(reinterpret_cast<const char*>(data), std::streamsize(size_t(n) * 4));
  if (!os.flush()) throw Error(path + ": write failed");
}

NpyArray read_npy(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  if (!is) throw Error(path + ": cannot open");
  std::stringstream ss;
  ss << is.rdbuf();
  const std::string b = ss.str();
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw Error(path + ": not a .npy file");
  size_t hl, off;
  if (b[6] == 1) hl = uint8_t(b[8]) | size_t(uint8_t(b[9])) << 8, off = 10;
  else if (b.size() >= 12) hl = uint8_t(b[8]) | size_t(uint8_t(b[9])) << 8 | size_t(uint8_t(b[10])) << 16 | size_t(uint8_t(b[11])) << 24, off = 12;
  else throw Error(path + ": truncated .npy header");
  if (off + hl > b.size()) throw Error(path + ": truncated .npy header");
  const std::string h = b.substr(off, hl);
  auto field = [&](const std::string& k) {
    size_t p = h.find("'" + k + "'");
    if (p == std::string::npos) throw Error(path + ": .npy header lacks '" + k + "'");
    return h.substr(h.find(':', p) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  std::string fo = field("fortran_order");
  if (fo.compare(fo.find_first_not_of(' '), 4, "True") == 0) throw Error(path + ": Fortran-order arrays are not supported");
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
  NpyArray a;
  int64_t n = 1;
  std::stringstream s2(sh);
  std::string tok;
  while (std::getline(s2, tok, ','))
    if (tok.find_first_not_of(' ') != std::string::npos) a.shape.push_back(std::stoll(tok)), n *= a.shape.back();
  size_t es = descr == "<f4" || descr == "<i4" ? 4 : descr == "<f8" || descr == "<i8" ? 8 : 0;
  if (!es) throw Error(path + ": unsupported dtype '" + descr + "' (want <f4, <f8, <i4 or <i8)");
  const size_t data_off = off + hl;
  if (b.size() - data_off < size_t(n) * es) throw Error(path + ": truncated .npy data");
  a.data.resize(size_t(n));
  const char* p = b.data() + data_off;
  for (int64_t i = 0; i < n; i++) {
    if (descr == "<f4") { float v; std::memcpy(&v, p + i * 4, 4); a.data[i] = v; }
    else if (descr == "<f8") { double v; std::memcpy(&v, p + i * 8, 8); a.data[i] = float(v); }
    else if (descr == "<i4") { int32_t v; std::memcpy(&v, p + i * 4, 4); a.data[i] = float(v); }
    else { int64_t v; std::memcpy(&v, p + i * 8, 8); a.data[i] = float(v); }
  }
  return a;
}

}  // namespace ssm

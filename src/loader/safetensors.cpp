// safetensors parsing, validation and mmap (see safetensors.hpp).
#include "loader/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/error.hpp"

namespace ssm {
namespace {

using json = nlohmann::json;

// Element size of every dtype the format defines; 0 = unknown name.
size_t st_dtype_size(const std::string& s) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  auto it = sizes.find(s);
  return it == sizes.end() ? 0 : it->second;
}

[[noreturn]] void fail(const std::string& what, const std::string& msg) { throw Error(what + ": " + msg); }

TensorInfo parse_entry(const std::string& what, const std::string& name, const json& v) {
  std::string where = "tensor '" + name + "'";
  if (!v.is_object()) fail(what, where + ": header entry must be an object");
  TensorInfo ti;
  ti.name = name;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) fail(what, where + ": missing string field 'dtype'");
  ti.dtype_str = dt->get<std::string>();
  size_t esize = st_dtype_size(ti.dtype_str);
  if (esize == 0) fail(what, where + ": unknown dtype '" + ti.dtype_str + "' (expected one of F32, F16, BF16, I64, ...)");
  ti.loadable = parse_dtype(ti.dtype_str, &ti.dtype);
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) fail(what, where + ": missing array field 'shape'");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) fail(what, where + ": shape entries must be non-negative integers");
    uint64_t x = d.get<uint64_t>();
    if (x > (uint64_t(1) << 40) || (x && numel > (uint64_t(1) << 50) / x)) fail(what, where + ": shape is absurdly large");
    numel *= x;
    ti.shape.push_back(int64_t(x));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    fail(what, where + ": 'data_offsets' must be two non-negative integers [begin, end]");
  ti.begin = (*off)[0].get<uint64_t>();
  ti.end = (*off)[1].get<uint64_t>();
  if (ti.end < ti.begin) fail(what, where + ": data_offsets end " + std::to_string(ti.end) + " is before begin " + std::to_string(ti.begin));
  if (ti.end - ti.begin != numel * esize)
    fail(what, where + ": data_offsets span " + std::to_string(ti.end - ti.begin) + " bytes but dtype " + ti.dtype_str +
                   " and shape " + shape_str(ti.shape) + " need " + std::to_string(numel * esize));
  return ti;
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 8) fail(what, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (truncated?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
  if (n > 100'000'000) fail(what, "header length " + std::to_string(n) + " exceeds the 100 MB limit (not a safetensors file?)");
  if (n > size - 8)
    fail(what, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(size) + "-byte file (truncated?)");
  json h = json::parse(data + 8, data + 8 + n, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded()) fail(what, "header is not valid JSON");
  if (!h.is_object()) fail(what, "header must be a JSON object");
  SafetensorsHeader out;
  out.data_start = 8 + n;
  const uint64_t buf = size - out.data_start;
  for (const auto& [key, v] : h.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) fail(what, "__metadata__ must be an object of strings");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) fail(what, "__metadata__ value for '" + mk + "' must be a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    out.tensors[key] = parse_entry(what, key, v);
  }
  // The data section must be tiled exactly: sorted by begin, each tensor starts where the last ended.
  std::vector<const TensorInfo*> order;
  for (const auto& [k, t] : out.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  uint64_t pos = 0;
  for (const TensorInfo* t : order) {
    if (t->end > buf)
      fail(what, "tensor '" + t->name + "' data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
                     ") run past the " + std::to_string(buf) + "-byte data section (truncated file?)");
    if (t->begin < pos) fail(what, "tensor '" + t->name + "' overlaps the previous tensor (data_offsets begin " + std::to_string(t->begin) + " < " + std::to_string(pos) + ")");
    if (t->begin > pos) fail(what, "gap in the data section before tensor '" + t->name + "' (begin " + std::to_string(t->begin) + ", expected " + std::to_string(pos) + ")");
    pos = t->end;
  }
  if (pos != buf)
    fail(what, "data section is " + std::to_string(buf) + " bytes but the tensors cover " + std::to_string(pos) + " (trailing bytes or truncated file)");
  return out;
}

namespace {

// The whole file in anonymous memory (2 MiB-aligned, advised for huge pages), read with pread.
std::shared_ptr<void> read_resident(int fd, size_t size, const std::string& path) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t len = (size + kHuge - 1) / kHuge * kHuge;
  // Over-map by one huge page so the start can be aligned to it; the slack is unmapped again.
  void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw Error(path + ": cannot allocate " + std::to_string(size >> 20) + " MiB for its weights (" + std::strerror(errno) + ")");
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw), a = (r + kHuge - 1) / kHuge * kHuge;
  if (a > r) munmap(raw, a - r);
  if (r + kHuge > a) munmap(reinterpret_cast<void*>(a + len), r + kHuge - a);
  void* m = reinterpret_cast<void*>(a);
#ifdef MADV_HUGEPAGE
  madvise(m, len, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KiB
#endif
  std::shared_ptr<void> keep(m, [len](void* p) { munmap(p, len); });
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, static_cast<char*>(m) + done, std::min<size_t>(size - done, size_t(64) << 20), off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(path + ": read failed at byte " + std::to_string(done) + " of " + std::to_string(size) + " (" +
                            (n < 0 ? std::strerror(errno) : "file shrank while reading") + ")");
    done += size_t(n);
  }
  return keep;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, bool resident) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_t size = size_t(st.st_size);
  std::shared_ptr<void> keep;
  if (size > 0 && resident) {
    try {
      keep = read_resident(fd, size, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
  } else if (size > 0) {
    void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      throw Error(path + ": mmap failed (" + std::strerror(errno) + ")");
    }
    keep = std::shared_ptr<void>(m, [size](void* p) { munmap(p, size); });
  }
  ::close(fd);
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = static_cast<const uint8_t*>(keep.get());
  f->size_ = size;
  f->keepalive_ = keep;
  static const uint8_t empty[1] = {0};
  f->header_ = parse_safetensors(size ? f->map_ : empty, size, path);
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) throw Error(path_ + ": no tensor named '" + name + "'");
  const TensorInfo& ti = it->second;
  if (!ti.loadable)
    throw Error(path_ + ": tensor '" + name + "' has dtype " + ti.dtype_str + "; ssm computes with F32, F16 or BF16 (convert the checkpoint)");
  const uint8_t* p = map_ + header_.data_start + ti.begin;
  Tensor view(keepalive_, const_cast<uint8_t*>(p), ti.dtype, ti.shape);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti.dtype) != 0) return view.clone();  // unaligned writer
  return view;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& [name, t] : tensors) {
    std::string dt = t.dtype() == DType::F32 ? "F32" : t.dtype() == DType::F16 ? "F16" : t.dtype() == DType::I8 ? "I8" : "BF16";
    h[name] = {{"dtype", dt}, {"shape", t.shape()}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string hs = h.dump();
  while ((hs.size() + 8) % 8) hs += ' ';
  std::string tmp = path + ".tmp";
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw Error(path + ": cannot open for writing");
    uint64_t n = hs.size();
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = uint8_t(n >> (8 * i));
    os.write(reinterpret_cast<const char*>(len), 8);
    os.write(hs.data(), std::streamsize(hs.size()));
    for (const auto& [name, t] : tensors) os.write(static_cast<const char*>(t.raw()), std::streamsize(t.nbytes()));
    if (!os.flush()) throw Error(path + ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": rename from temporary file failed");
}

}  // namespace ssm

// safetensors reader: 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets}, then the raw little-endian data. Files are mmapped (or, `resident`,
// read into anonymous memory backed by transparent huge pages where the kernel allows) and tensors
// are returned as zero-copy views. Every offset, length and dtype is checked before any tensor is used;
// errors name the file and tensor (format: huggingface/safetensors README).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace ssm {

struct TensorInfo {
  std::string name;
  std::string dtype_str;  // as written in the header ("BF16", "I64", ...)
  bool loadable = false;  // dtype is one the engine computes with (F32/F16/BF16)
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Parses and validates a whole file image (header and offsets against `size`). `what` names the
// file in error messages. Throws ssm::Error on any inconsistency. Exposed for fuzzing.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& what);

class SafetensorsFile {
 public:
  // resident = false: mmap the file (pages come from the page cache on first use, 4 KiB each).
  // resident = true: read it whole into anonymous memory aligned to 2 MiB and advised for transparent
  // huge pages (MADV_HUGEPAGE), so streaming the weights at decode takes ~512x fewer TLB entries;
  // on this project's 2-core VM a 1 GiB read ran at ~40 GB/s that way against ~34 with 4 KiB pages.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path, bool resident = false);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  bool has(const std::string& name) const { return header_.tensors.count(name) != 0; }
  // Zero-copy view of a tensor (a copy only when the data is not aligned to its element size).
  Tensor get(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
  std::shared_ptr<void> keepalive_;  // owner handed to views; unmaps when the last view dies
};

// Writes tensors (host, any dtype) as a safetensors file. Used by `ssm convert` and tests.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ssm

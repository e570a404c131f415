// Checkpoint: the tensors of a model directory, whether stored as one `model.safetensors`, as shards
// listed in `model.safetensors.index.json`, or as any set of `*.safetensors` files. Names resolve to
// zero-copy views; every shard is validated when opened.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loader/safetensors.hpp"

namespace ssm {

class Checkpoint {
 public:
  // How the files are held (SafetensorsFile::open): mmapped, read into huge-page memory, or Auto —
  // read when the checkpoint's files take at most half of the memory available now (MemAvailable).
  enum class Memory { Mmap, Resident, Auto };
  // Opens the safetensors files of `dir`. Throws ssm::Error naming the file and the fix.
  static Checkpoint open(const std::string& dir, Memory memory = Memory::Mmap);
  // An in-memory checkpoint (host tensors), e.g. random weights of a published shape. `what` names it
  // in errors the way a directory would.
  static Checkpoint from_tensors(std::vector<std::pair<std::string, Tensor>> tensors, const std::string& what);

  bool has(const std::string& name) const { return where_.count(name) != 0 || mem_.count(name) != 0; }
  Tensor get(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
  std::map<std::string, std::pair<TensorInfo, Tensor>> mem_;  // in-memory tensors
  std::string dir_;
};

// Reads a whole (small) text file; throws naming the path.
std::string read_text_file(const std::string& path);

}  // namespace ssm

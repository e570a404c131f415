// Model-directory checkpoint discovery and sharding (see checkpoint.hpp).
#include "loader/checkpoint.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ssm/error.hpp"

namespace ssm {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_text_file(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  if (!is) throw Error(path + ": cannot open");
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

namespace {
// Bytes the kernel reports as available for new allocations (MemAvailable), 0 when unknown.
uint64_t mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}
}  // namespace

Checkpoint Checkpoint::open(const std::string& dir, Memory memory) {
  Checkpoint c;
  c.dir_ = dir;
  if (!fs::is_directory(dir)) throw Error(dir + ": not a directory (expected a model directory with config.json and *.safetensors)");
  std::vector<std::string> shard_names;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index)) {
    json j = json::parse(read_text_file(index.string()), nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(index.string() + ": not valid JSON");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) throw Error(index.string() + ": missing object field 'weight_map'");
    std::set<std::string> seen;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) throw Error(index.string() + ": weight_map['" + name + "'] must be a file name");
      std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw Error(index.string() + ": weight_map['" + name + "'] names '" + f + "', which is not a file in the model directory");
      weight_map[name] = f;
      if (seen.insert(f).second) shard_names.push_back(f);
    }
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") shard_names.push_back(e.path().filename().string());
    std::sort(shard_names.begin(), shard_names.end());
  }
  if (shard_names.empty()) {
    bool bin = fs::exists(fs::path(dir) / "pytorch_model.bin");
    throw Error(dir + ": no *.safetensors files" +
                std::string(bin ? " (found pytorch_model.bin: convert it with safetensors' save_file first)" : ""));
  }
  uint64_t bytes = 0;
  for (const std::string& s : shard_names) {
    fs::path p = fs::path(dir) / s;
    if (!fs::exists(p)) throw Error(index.string() + ": lists shard '" + s + "', which does not exist in " + dir);
    std::error_code ec;
    bytes += uint64_t(fs::file_size(p, ec));
  }
  const bool resident = memory == Memory::Resident || (memory == Memory::Auto && bytes <= mem_available_bytes() / 2);
  for (const std::string& s : shard_names) {
    fs::path p = fs::path(dir) / s;
    c.files_.push_back(SafetensorsFile::open(p.string(), resident));
    size_t fi = c.files_.size() - 1;
    for (const auto& [name, ti] : c.files_.back()->header().tensors) {
      if (c.where_.count(name))
        throw Error(p.string() + ": tensor '" + name + "' also appears in " + c.files_[c.where_[name]]->path());
      c.where_[name] = fi;
    }
  }
  for (const auto& [name, file] : weight_map) {
    auto it = c.where_.find(name);
    if (it == c.where_.end()) throw Error(index.string() + ": tensor '" + name + "' is listed in '" + file + "' but that shard does not contain it");
    if (fs::path(c.files_[it->second]->path()).filename() != file)
      throw Error(index.string() + ": tensor '" + name + "' is listed in '" + file + "' but stored in " + c.files_[it->second]->path());
  }
  return c;
}

Checkpoint Checkpoint::from_tensors(std::vector<std::pair<std::string, Tensor>> tensors, const std::string& what) {
  Checkpoint c;
  c.dir_ = what;
  for (auto& [name, t] : tensors) {
    TensorInfo ti;
    ti.name = name;
    ti.dtype_str = t.dtype() == DType::F32 ? "F32" : t.dtype() == DType::F16 ? "F16" : t.dtype() == DType::I8 ? "I8" : "BF16";
    ti.loadable = true;
    ti.dtype = t.dtype();
    ti.shape = t.shape();
    ti.end = t.nbytes();
    c.mem_[name] = {ti, std::move(t)};
  }
  return c;
}

Tensor Checkpoint::get(const std::string& name) const {
  if (auto m = mem_.find(name); m != mem_.end()) return m->second.second;
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(dir_ + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second]->get(name);
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  if (auto m = mem_.find(name); m != mem_.end()) return m->second.first;
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(dir_ + ": checkpoint has no tensor '" + name + "'");
  return files_[it->second]->header().tensors.at(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> r;
  for (const auto& [k, v] : where_) r.push_back(k);
  for (const auto& [k, v] : mem_) r.push_back(k);
  return r;
}

}  // namespace ssm

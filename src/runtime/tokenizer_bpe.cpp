// BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, merges (as "a b" strings or
// ["a","b"] pairs), unk_token/fuse_unk, byte_fallback (<0xXX> tokens), continuing_subword_prefix,
// end_of_word_suffix and ignore_merges. Merging applies the lowest-rank pair first (leftmost on
// ties) with a min-heap over a linked list of symbols; results per pre-token are cached.
#include <cstdio>
#include <queue>

#include "runtime/tokenizer_internal.hpp"
#include "ssm/error.hpp"

namespace ssm::tok {
namespace {

constexpr size_t kCacheCapacity = 10000;
constexpr size_t kMaxCachedWordBytes = 256;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::pair<std::string, std::string> parse_merge(const json& m, size_t i, const std::string& where) {
  std::string w = where + ".merges[" + std::to_string(i) + "]";
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) throw Error(w + ": expected \"left right\" separated by one space, got '" + s + "'");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0], m[1]};
  throw Error(w + ": expected a \"left right\" string or a [\"left\", \"right\"] pair");
}

std::string opt_string(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

struct MergeCand {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
  bool operator>(const MergeCand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

BpeModel::BpeModel(const json& m, const std::string& where) {
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw Error(where + ".vocab: missing or not an object of token -> id");
  int32_t max_id = -1;
  vocab_.reserve(m["vocab"].size());
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      throw Error(where + ".vocab['" + it.key() + "']: id must be a non-negative 32-bit integer");
    int32_t id = it.value().get<int32_t>();
    vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [tok, id] : vocab_) id_to_token_[id] = tok;

  const json& merges = m.value("merges", json::array());
  if (!merges.is_array()) throw Error(where + ".merges: expected an array");
  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    auto [a, b] = parse_merge(merges[i], i, where);
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
      throw Error(where + ".merges[" + std::to_string(i) + "]: '" + a + " " + b +
                  "' uses a token missing from model.vocab");
    merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(static_cast<uint32_t>(i), iab->second));
  }

  std::string unk = opt_string(m, "unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw Error(where + ".unk_token: '" + unk + "' is not in model.vocab");
    unk_id_ = it->second;
  }
  continuing_prefix_ = opt_string(m, "continuing_subword_prefix");
  end_suffix_ = opt_string(m, "end_of_word_suffix");
  byte_fallback_ = m.value("byte_fallback", false);
  fuse_unk_ = m.value("fuse_unk", false);
  ignore_merges_ = m.value("ignore_merges", false);
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    throw Error(where + ".dropout: BPE dropout is not supported for inference (set it to null)");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>& syms) const {
  std::optional<std::pair<int32_t, uint32_t>> unk;  // pending (id, byte length)
  auto push = [&](int32_t id, uint32_t len) {
    syms.push_back(Symbol{id, static_cast<int32_t>(syms.size()) - 1, -1, len});
  };
  std::string buf;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    utf8_next(word, i);
    std::string_view ch = word.substr(start, i - start);
    std::string_view key = ch;
    if ((start > 0 && !continuing_prefix_.empty()) || (i == word.size() && !end_suffix_.empty())) {
      buf.assign(start > 0 ? continuing_prefix_ : std::string());
      buf.append(ch);
      if (i == word.size()) buf += end_suffix_;
      key = buf;
    }
    auto len = static_cast<uint32_t>(ch.size());
    if (auto it = vocab_.find(key); it != vocab_.end()) {
      if (unk) push(unk->first, unk->second), unk.reset();
      push(it->second, len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : key) all = all && byte_ids_[c] >= 0;
      if (all) {
        if (unk) push(unk->first, unk->second), unk.reset();
        for (unsigned char c : key) push(byte_ids_[c], 1);
        continue;
      }
    }
    if (!unk_id_) continue;
    if (unk && fuse_unk_) {
      unk->second += len;
    } else {
      if (unk) push(unk->first, unk->second);
      unk = std::make_pair(*unk_id_, len);
    }
  }
  if (unk) push(unk->first, unk->second);
  for (size_t k = 0; k + 1 < syms.size(); ++k) syms[k].next = static_cast<int32_t>(k + 1);
}

std::optional<std::pair<uint32_t, int32_t>> BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find(pair_key(a, b));
  if (it == merges_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::merge_all(std::vector<Symbol>& syms) const {
  std::priority_queue<MergeCand, std::vector<MergeCand>, std::greater<>> heap;
  for (size_t k = 0; k + 1 < syms.size(); ++k)
    if (auto m = find_merge(syms[k].id, syms[k + 1].id)) heap.push({m->first, static_cast<int32_t>(k), m->second});
  while (!heap.empty()) {
    MergeCand top = heap.top();
    heap.pop();
    Symbol& left = syms[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = syms[left.next];
    auto m = find_merge(left.id, right.id);
    if (!m || m->second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    if (left.prev >= 0)
      if (auto pm = find_merge(syms[left.prev].id, left.id)) heap.push({pm->first, left.prev, pm->second});
    if (left.next >= 0)
      if (auto nm = find_merge(left.id, syms[left.next].id)) heap.push({nm->first, top.pos, nm->second});
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<Symbol> syms;
  syms.clear();
  initial_symbols(word, syms);
  merge_all(syms);
  size_t first = out.size();
  for (const auto& s : syms)
    if (s.len > 0) out.push_back(s.id);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
  }
}

}  // namespace ssm::tok

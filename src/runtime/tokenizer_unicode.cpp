// UTF-8 helpers and Unicode operations for the tokenizer: strict validation, lossy conversion (as
// Rust's String::from_utf8_lossy), NFC/NFD/NFKC/NFKD normalization, full lowercase mapping and the
// White_Space property. Tables come from tokenizer_unicode_data.inc, generated from the Unicode
// Character Database by scripts/gen_unicode_tables.py.
#include <algorithm>

#include "runtime/tokenizer_internal.hpp"

namespace ssm::tok {
namespace {

struct CccRange {
  char32_t first, last;
  uint8_t ccc;
};
struct DecompEntry {
  char32_t cp;
  uint16_t canon_off, canon_len, compat_off, compat_len;
};
struct ComposeEntry {
  char32_t a, b, out;
};
struct CaseEntry {
  char32_t cp;
  uint16_t off, len;
};
struct CpRange {
  char32_t first, last;
};

#include "runtime/tokenizer_unicode_data.inc"

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t ccc_of(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCccRanges), std::end(kCccRanges), cp,
                             [](char32_t c, const CccRange& r) { return c < r.first; });
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

// Expected continuation-byte range for the second byte after lead byte b0.
void second_range(unsigned char b0, unsigned char& lo, unsigned char& hi) {
  lo = 0x80, hi = 0xBF;
  if (b0 == 0xE0) lo = 0xA0;
  if (b0 == 0xED) hi = 0x9F;
  if (b0 == 0xF0) lo = 0x90;
  if (b0 == 0xF4) hi = 0x8F;
}

size_t seq_len(unsigned char b0) {
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return 2;
  if (b0 >= 0xE0 && b0 <= 0xEF) return 3;
  if (b0 >= 0xF0 && b0 <= 0xF4) return 4;
  return 0;
}

// Number of leading bytes of s[i..] that form a valid (possibly incomplete) UTF-8 prefix.
size_t valid_prefix(std::string_view s, size_t i, size_t& need) {
  auto b0 = static_cast<unsigned char>(s[i]);
  need = seq_len(b0);
  if (need == 0) return 0;
  size_t k = 1;
  for (; k < need && i + k < s.size(); ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (k == 1) second_range(b0, lo, hi);
    if (b < lo || b > hi) break;
  }
  return k;
}

void decompose(char32_t cp, bool compat, std::u32string& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xA0) {
    auto it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), cp,
                               [](const DecompEntry& e, char32_t c) { return e.cp < c; });
    if (it != std::end(kDecomp) && it->cp == cp) {
      uint16_t off = compat ? it->compat_off : it->canon_off;
      uint16_t len = compat ? it->compat_len : it->canon_len;
      if (len) {
        out.append(kDecompPool + off, kDecompPool + off + len);
        return;
      }
    }
  }
  out.push_back(cp);
}

void canonical_order(std::u32string& s) {
  for (size_t i = 1; i < s.size(); ++i) {
    uint8_t c = ccc_of(s[i]);
    if (c == 0) continue;
    size_t j = i;
    while (j > 0 && ccc_of(s[j - 1]) > c) {
      std::swap(s[j], s[j - 1]);
      --j;
    }
  }
}

std::optional<char32_t> compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  auto it = std::lower_bound(std::begin(kCompose), std::end(kCompose), std::make_pair(a, b),
                             [](const ComposeEntry& e, const std::pair<char32_t, char32_t>& k) {
                               return e.a != k.first ? e.a < k.first : e.b < k.second;
                             });
  if (it != std::end(kCompose) && it->a == a && it->b == b) return it->out;
  return std::nullopt;
}

std::u32string compose(const std::u32string& in) {
  std::u32string out;
  out.reserve(in.size());
  long starter = -1;
  uint8_t last_cc = 0;
  for (char32_t ch : in) {
    uint8_t cc = ccc_of(ch);
    if (starter >= 0) {
      bool adjacent = out.size() == static_cast<size_t>(starter) + 1;
      if (adjacent || (last_cc != 0 && last_cc < cc)) {
        if (auto c = compose_pair(out[starter], ch)) {
          out[starter] = *c;
          continue;
        }
      }
    }
    if (cc == 0) starter = static_cast<long>(out.size());
    out.push_back(ch);
    last_cc = cc;
  }
  return out;
}

}  // namespace

size_t utf8_valid_len(std::string_view s, size_t i) {
  size_t need = 0;
  size_t k = valid_prefix(s, i, need);
  return (need != 0 && k == need) ? need : 0;
}

bool utf8_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_valid_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

char32_t utf8_next(std::string_view s, size_t& i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return s[i++], b0;
  size_t n = seq_len(b0);
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    size_t need = 0;
    size_t k = valid_prefix(s, i, need);
    if (need != 0 && k == need) {
      out.append(s.substr(i, k));
    } else {
      out.append("\xEF\xBF\xBD");
      k = std::max<size_t>(k, 1);
    }
    i += k;
  }
  return out;
}

std::string unicode_normalize(std::string_view s, NormForm form) {
  bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) return std::string(s);
  bool compat = form == NormForm::NFKC || form == NormForm::NFKD;
  std::u32string buf;
  buf.reserve(s.size());
  for (size_t i = 0; i < s.size();) decompose(utf8_next(s, i), compat, buf);
  canonical_order(buf);
  if (form == NormForm::NFC || form == NormForm::NFKC) buf = compose(buf);
  std::string out;
  out.reserve(s.size());
  for (char32_t c : buf) utf8_append(out, c);
  return out;
}

std::string unicode_lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++i;
      continue;
    }
    char32_t cp = utf8_next(s, i);
    auto it = std::lower_bound(std::begin(kLower), std::end(kLower), cp,
                               [](const CaseEntry& e, char32_t c) { return e.cp < c; });
    if (it != std::end(kLower) && it->cp == cp) {
      for (uint16_t k = 0; k < it->len; ++k) utf8_append(out, kLowerPool[it->off + k]);
    } else {
      utf8_append(out, cp);
    }
  }
  return out;
}

bool is_unicode_whitespace(char32_t cp) {
  for (const auto& r : kWhiteSpace)
    if (cp >= r.first && cp <= r.last) return true;
  return false;
}

}  // namespace ssm::tok

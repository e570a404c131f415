// Builtins of the chat template engine: Jinja2's filters and tests, the Python str/dict/list methods
// templates call, the globals transformers provides (range, namespace, dict, raise_exception,
// strftime_now), attribute / item / slice access with Jinja2's "undefined instead of an error" rules,
// and the arithmetic operators with Python semantics (int64 with overflow checks instead of bignums).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "runtime/chat_template_impl.hpp"

namespace ssm::jinja {
namespace {

using FilterFn = Value (*)(Evaluator&, const Value&, const Args&);
using TestFn = bool (*)(Evaluator&, const Value&, const Args&);

// ------------------------------------------------------------------ helpers
Value func(std::string name, std::function<Value(Evaluator&, const Args&)> fn) {
  Value v;
  v.type = Value::Type::Func;
  v.func = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

const std::string& need_string(const Value& v, const char* what) {
  require_defined(v);
  if (!v.is_string()) fail(std::string(what) + ": expected a string, got " + type_name(v));
  return v.s;
}

int64_t need_int(const Value& v, const char* what) {
  require_defined(v);
  if (v.type == Value::Type::Int) return v.i;
  if (v.type == Value::Type::Bool) return v.b;
  fail(std::string(what) + ": expected an integer, got " + type_name(v));
}

bool arg_bool(const Args& a, size_t idx, const char* name, bool dflt) {
  const Value* v = a.get(idx, name);
  return v ? truthy(*v) : dflt;
}

const Value* arg(const Args& a, size_t idx, const char* name) {
  const Value* v = a.get(idx, name);
  return v && !v->is_undefined() ? v : nullptr;
}

void check_size(Evaluator& ev, size_t bytes) {
  if (bytes > ev.limits().max_output) fail("string result exceeds the output limit");
}

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// str.strip family; `chars` null strips whitespace, else any code point of *chars.
std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  if (!chars || chars->is_none()) {
    size_t b = 0, e = s.size();
    if (left)
      while (b < e && is_space(static_cast<unsigned char>(s[b]))) ++b;
    if (right)
      while (e > b && is_space(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
  }
  auto set = code_points(need_string(*chars, "strip"));
  auto cps = code_points(s);
  size_t b = 0, e = cps.size();
  auto in = [&](const std::string& cp) { return std::find(set.begin(), set.end(), cp) != set.end(); };
  if (left)
    while (b < e && in(cps[b])) ++b;
  if (right)
    while (e > b && in(cps[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += cps[k];
  return out;
}

std::string replace(Evaluator& ev, const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every code point
    auto cps = code_points(s);
    int64_t n = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (k < cps.size()) out += cps[k];
      check_size(ev, out.size());
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  for (;;) {
    size_t hit = (count >= 0 && n >= count) ? std::string::npos : s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    check_size(ev, out.size());
    pos = hit + from.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

List split(Evaluator& ev, const std::string& s, const Value* sep, int64_t maxsplit) {
  List out;
  if (!sep || sep->is_none()) {
    size_t k = 0;
    while (true) {
      while (k < s.size() && is_space(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = s.size();
        while (e > k && is_space(static_cast<unsigned char>(s[e - 1]))) --e;
        out.push_back(Value::string(s.substr(k, e - k)));
        break;
      }
      size_t b = k;
      while (k < s.size() && !is_space(static_cast<unsigned char>(s[k]))) ++k;
      out.push_back(Value::string(s.substr(b, k - b)));
      ev.tick();
    }
    return out;
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) fail("split: empty separator");
  size_t pos = 0;
  while (true) {
    size_t hit = (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) ? std::string::npos : s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(Value::string(s.substr(pos, hit - pos)));
    ev.tick();
    pos = hit + d.size();
  }
  out.push_back(Value::string(s.substr(pos)));
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

// Python str.title(): letters after a non-letter are upper-cased, other letters lower-cased (ASCII).
std::string py_title(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    bool letter = std::isalpha(u) != 0;
    if (letter) c = static_cast<char>(prev_letter ? std::tolower(u) : std::toupper(u));
    prev_letter = letter || u >= 0x80;
  }
  return out;
}

// Jinja2's title filter: words start after whitespace or one of -([{<.
std::string jinja_title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    bool sep = is_space(u) || std::strchr("-([{<", c);
    if (sep) {
      start = true;
      continue;
    }
    c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
    start = false;
  }
  return out;
}

size_t length(const Value& v) {
  switch (v.type) {
    case Value::Type::String: return code_point_count(v.s);
    case Value::Type::List: return v.list->size();
    case Value::Type::Dict: return v.dict->items.size();
    case Value::Type::Undefined: return 0;
    default: fail(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

// Attribute lookup as filters do it: "a.b.0" walks dicts and lists.
Value lookup_path(const Value& v, const Value& attribute) {
  if (attribute.type == Value::Type::Int) return getitem(v, attribute);
  const std::string& path = need_string(attribute, "attribute");
  Value cur = v;
  size_t b = 0;
  while (true) {
    size_t e = path.find('.', b);
    std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits && part.size() < 18) cur = getitem(cur, Value::integer(std::stoll(part)));
    else cur = getattr(cur, part);
    if (e == std::string::npos) return cur;
    b = e + 1;
  }
}

// Sort key comparison used by sort / unique / min / max / dictsort (case-insensitive by default).
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(lower(v.s));
  return v;
}

List iterate_checked(Evaluator& ev, const Value& v) {
  List items = iterate(v);
  ev.tick(items.size() / 16 + 1);
  return items;
}

// ------------------------------------------------------------------ filters
Value f_trim(Evaluator&, const Value& v, const Args& a) {
  return Value::string(strip(to_str(v), arg(a, 0, "chars"), true, true));
}
Value f_length(Evaluator&, const Value& v, const Args&) { return Value::integer(static_cast<int64_t>(length(v))); }
Value f_upper(Evaluator&, const Value& v, const Args&) { return Value::string(upper(to_str(v))); }
Value f_lower(Evaluator&, const Value& v, const Args&) { return Value::string(lower(to_str(v))); }
Value f_title(Evaluator&, const Value& v, const Args&) { return Value::string(jinja_title(to_str(v))); }
Value f_capitalize(Evaluator&, const Value& v, const Args&) { return Value::string(capitalize(to_str(v))); }
Value f_string(Evaluator&, const Value& v, const Args&) { return v.is_string() ? v : Value::string(to_str(v)); }
Value f_safe(Evaluator&, const Value& v, const Args&) { return v; }

Value f_tojson(Evaluator& ev, const Value& v, const Args& a) {
  const Value* ind = arg(a, 0, "indent");
  int indent = -1;
  if (ind && !ind->is_none()) {
    int64_t n = need_int(*ind, "tojson indent");
    indent = static_cast<int>(std::clamp<int64_t>(n, 0, 64));
  }
  std::string item_sep = indent >= 0 ? "," : ", ", key_sep = ": ";
  if (const Value* sep = arg(a, 99, "separators"); sep && !sep->is_none()) {
    if (!sep->is_list() || sep->list->size() != 2) fail("tojson: separators must be a pair of strings");
    item_sep = need_string((*sep->list)[0], "tojson separators");
    key_sep = need_string((*sep->list)[1], "tojson separators");
  }
  bool sort_keys = arg_bool(a, 99, "sort_keys", false);
  bool ensure_ascii = arg_bool(a, 99, "ensure_ascii", false);
  std::string out = to_json(v, indent, sort_keys, item_sep, key_sep);
  if (ensure_ascii) {
    std::string esc;
    for (const std::string& cp : code_points(out)) {
      unsigned char c0 = static_cast<unsigned char>(cp[0]);
      if (c0 < 0x80 || cp.size() == 1) {
        esc += cp;
        continue;
      }
      uint32_t u = cp.size() == 2 ? (c0 & 0x1f) : cp.size() == 3 ? (c0 & 0x0f) : (c0 & 0x07);
      for (size_t k = 1; k < cp.size(); ++k) u = (u << 6) | (static_cast<unsigned char>(cp[k]) & 0x3f);
      char buf[16];
      if (u >= 0x10000) {
        u -= 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", u);
      }
      esc += buf;
    }
    out = std::move(esc);
  }
  check_size(ev, out.size());
  return Value::string(std::move(out));
}

Value f_default(Evaluator&, const Value& v, const Args& a) {
  const Value* d = a.get(0, "default_value");
  bool boolean = arg_bool(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !truthy(v))) return d ? *d : Value::string("");
  return v;
}

Value f_join(Evaluator& ev, const Value& v, const Args& a) {
  const Value* sep = arg(a, 0, "d");
  const Value* attribute = arg(a, 1, "attribute");
  std::string d = sep ? to_str(*sep) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate_checked(ev, v)) {
    if (!first) out += d;
    first = false;
    out += to_str(attribute ? lookup_path(item, *attribute) : item);
    check_size(ev, out.size());
  }
  return Value::string(std::move(out));
}

Value f_first(Evaluator& ev, const Value& v, const Args&) {
  require_defined(v);
  List items = iterate_checked(ev, v);
  return items.empty() ? Value::undefined("first") : items.front();
}
Value f_last(Evaluator& ev, const Value& v, const Args&) {
  require_defined(v);
  List items = iterate_checked(ev, v);
  return items.empty() ? Value::undefined("last") : items.back();
}

Value f_list(Evaluator& ev, const Value& v, const Args&) {
  require_defined(v);
  return Value::make_list(iterate_checked(ev, v));
}

Value f_items(Evaluator& ev, const Value& v, const Args&) {
  if (v.is_undefined()) return Value::make_list({});
  if (!v.is_dict()) fail(std::string("items: expected a mapping, got ") + type_name(v));
  List out;
  for (const auto& kv : v.dict->items) out.push_back(Value::make_list({Value::string(kv.first), kv.second}, true));
  ev.tick(out.size() / 16 + 1);
  return Value::make_list(std::move(out));
}

Value f_int(Evaluator&, const Value& v, const Args& a) {
  const Value* d = arg(a, 0, "default");
  Value dflt = d ? *d : Value::integer(0);
  switch (v.type) {
    case Value::Type::Int: return v;
    case Value::Type::Bool: return Value::integer(v.b);
    case Value::Type::Float:
      if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return dflt;
      return Value::integer(static_cast<int64_t>(v.f));
    case Value::Type::String: {
      std::string s = strip(v.s, nullptr, true, true);
      char* end = nullptr;
      errno = 0;
      long long n = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == 0 && errno == 0) return Value::integer(n);
      double f = std::strtod(s.c_str(), &end);  // Jinja2 falls back to int(float(s))
      if (!s.empty() && *end == 0 && std::isfinite(f) && std::fabs(f) < 9.2e18) return Value::integer(static_cast<int64_t>(f));
      return dflt;
    }
    default: return dflt;
  }
}

Value f_float(Evaluator&, const Value& v, const Args& a) {
  const Value* d = arg(a, 0, "default");
  Value dflt = d ? *d : Value::number(0.0);
  if (v.is_number()) return Value::number(as_double(v));
  if (v.is_string()) {
    std::string s = strip(v.s, nullptr, true, true);
    char* end = nullptr;
    double f = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == 0) return Value::number(f);
  }
  return dflt;
}

Value f_abs(Evaluator&, const Value& v, const Args&) {
  require_defined(v);
  if (v.type == Value::Type::Float) return Value::number(std::fabs(v.f));
  int64_t i = need_int(v, "abs");
  if (i == std::numeric_limits<int64_t>::min()) fail("abs: integer overflow");
  return Value::integer(i < 0 ? -i : i);
}

Value f_round(Evaluator&, const Value& v, const Args& a) {
  require_defined(v);
  double x = as_double(v);
  int64_t prec = 0;
  if (const Value* p = arg(a, 0, "precision")) prec = std::clamp<int64_t>(need_int(*p, "round precision"), -20, 20);
  std::string method = "common";
  if (const Value* m = arg(a, 1, "method")) method = need_string(*m, "round method");
  double scale = std::pow(10.0, static_cast<double>(prec));
  double y = x * scale;
  if (method == "common") y = std::round(y);
  else if (method == "ceil") y = std::ceil(y);
  else if (method == "floor") y = std::floor(y);
  else fail("round: method must be 'common', 'ceil' or 'floor'");
  return Value::number(y / scale);
}

Value f_replace(Evaluator& ev, const Value& v, const Args& a) {
  const Value* from = a.get(0, "old");
  const Value* to = a.get(1, "new");
  if (!from || !to) fail("replace: needs the old and new strings");
  const Value* count = arg(a, 2, "count");
  return Value::string(replace(ev, to_str(v), to_str(*from), to_str(*to),
                               count && !count->is_none() ? need_int(*count, "replace count") : -1));
}

Value f_indent(Evaluator& ev, const Value& v, const Args& a) {
  std::string ind = "    ";
  if (const Value* w = arg(a, 0, "width")) {
    if (w->is_string()) ind = w->s;
    else ind = std::string(static_cast<size_t>(std::clamp<int64_t>(need_int(*w, "indent width"), 0, 1024)), ' ');
  }
  bool first = arg_bool(a, 1, "first", false), blank = arg_bool(a, 2, "blank", false);
  std::string s = to_str(v) + "\n";
  std::vector<std::string> ls;
  size_t b = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '\n' || s[k] == '\r') {
      ls.push_back(s.substr(b, k - b));
      if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
      b = k + 1;
    }
  }
  if (b < s.size()) ls.push_back(s.substr(b));
  std::string out;
  for (size_t k = 0; k < ls.size(); ++k) {
    if (k > 0) {
      out += "\n";
      if (blank || !ls[k].empty()) out += ind;
    }
    out += ls[k];
    check_size(ev, out.size());
  }
  if (first) out = ind + out;
  return Value::string(std::move(out));
}

Value f_escape(Evaluator&, const Value& v, const Args&) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}

Value f_reverse(Evaluator& ev, const Value& v, const Args&) {
  require_defined(v);
  if (v.is_string()) {
    auto cps = code_points(v.s);
    std::string out;
    for (size_t k = cps.size(); k-- > 0;) out += cps[k];
    return Value::string(std::move(out));
  }
  List items = iterate_checked(ev, v);
  std::reverse(items.begin(), items.end());
  return Value::make_list(std::move(items));
}

Value f_sort(Evaluator& ev, const Value& v, const Args& a) {
  bool reverse = arg_bool(a, 0, "reverse", false), cs = arg_bool(a, 1, "case_sensitive", false);
  const Value* attribute = arg(a, 2, "attribute");
  List items = iterate_checked(ev, v);
  ev.tick(items.size());
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) keyed.emplace_back(sort_key(attribute ? lookup_path(item, *attribute) : item, cs), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    int c = compare(x.first, y.first, "<");
    return reverse ? c > 0 : c < 0;
  });
  List out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::make_list(std::move(out));
}

Value f_dictsort(Evaluator& ev, const Value& v, const Args& a) {
  require_defined(v);
  if (!v.is_dict()) fail(std::string("dictsort: expected a mapping, got ") + type_name(v));
  bool cs = arg_bool(a, 0, "case_sensitive", false);
  std::string by = "key";
  if (const Value* b = arg(a, 1, "by")) by = need_string(*b, "dictsort by");
  bool reverse = arg_bool(a, 2, "reverse", false);
  List items = *f_items(ev, v, {}).list;
  size_t idx = by == "value" ? 1 : 0;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    int c = compare(sort_key((*x.list)[idx], cs), sort_key((*y.list)[idx], cs), "<");
    return reverse ? c > 0 : c < 0;
  });
  return Value::make_list(std::move(items));
}

Value f_unique(Evaluator& ev, const Value& v, const Args& a) {
  bool cs = arg_bool(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  List out, seen;
  for (const Value& item : iterate_checked(ev, v)) {
    Value key = sort_key(attribute ? lookup_path(item, *attribute) : item, cs);
    ev.tick(seen.size() / 16 + 1);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::make_list(std::move(out));
}

Value min_max(Evaluator& ev, const Value& v, const Args& a, bool want_max) {
  bool cs = arg_bool(a, 0, "case_sensitive", false);
  const Value* attribute = arg(a, 1, "attribute");
  List items = iterate_checked(ev, v);
  if (items.empty()) return Value::undefined(want_max ? "max" : "min");
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    Value x = sort_key(attribute ? lookup_path(items[k], *attribute) : items[k], cs);
    Value y = sort_key(attribute ? lookup_path(items[best], *attribute) : items[best], cs);
    int c = compare(x, y, "<");
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}
Value f_min(Evaluator& ev, const Value& v, const Args& a) { return min_max(ev, v, a, false); }
Value f_max(Evaluator& ev, const Value& v, const Args& a) { return min_max(ev, v, a, true); }

Value f_sum(Evaluator& ev, const Value& v, const Args& a) {
  const Value* attribute = arg(a, 0, "attribute");
  const Value* start = arg(a, 1, "start");
  Value total = start ? *start : Value::integer(0);
  for (const Value& item : iterate_checked(ev, v)) total = binary_op("+", total, attribute ? lookup_path(item, *attribute) : item);
  return total;
}

// map(attribute='x' [, default=...]) or map('filter', args...)
Value f_map(Evaluator& ev, const Value& v, const Args& a) {
  List out;
  if (const Value* attribute = a.kwarg("attribute")) {
    const Value* dflt = a.kwarg("default");
    for (const Value& item : iterate_checked(ev, v)) {
      Value x = lookup_path(item, *attribute);
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
    return Value::make_list(std::move(out));
  }
  if (a.pos.empty()) fail("map: give a filter name or attribute=");
  const std::string& name = need_string(a.pos[0], "map");
  if (!has_filter(name)) fail("map: unknown filter '" + name + "'");
  Args rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const Value& item : iterate_checked(ev, v)) out.push_back(apply_filter(ev, name, item, rest));
  return Value::make_list(std::move(out));
}

// select / reject / selectattr / rejectattr
Value select_impl(Evaluator& ev, const Value& v, const Args& a, bool with_attr, bool keep) {
  size_t k = 0;
  const Value* attribute = nullptr;
  if (with_attr) {
    if (a.pos.empty()) fail("selectattr/rejectattr: missing the attribute name");
    attribute = &a.pos[k++];
  }
  std::string test;
  if (k < a.pos.size()) test = need_string(a.pos[k++], "select test");
  if (!test.empty() && !has_test(test)) fail("unknown test '" + test + "'");
  Args rest;
  rest.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(std::min(k, a.pos.size())), a.pos.end());
  rest.kw = a.kw;
  List out;
  for (const Value& item : iterate_checked(ev, v)) {
    Value x = attribute ? lookup_path(item, *attribute) : item;
    bool ok = test.empty() ? truthy(x) : apply_test(ev, test, x, rest);
    if (ok == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}
Value f_select(Evaluator& ev, const Value& v, const Args& a) { return select_impl(ev, v, a, false, true); }
Value f_reject(Evaluator& ev, const Value& v, const Args& a) { return select_impl(ev, v, a, false, false); }
Value f_selectattr(Evaluator& ev, const Value& v, const Args& a) { return select_impl(ev, v, a, true, true); }
Value f_rejectattr(Evaluator& ev, const Value& v, const Args& a) { return select_impl(ev, v, a, true, false); }

Value f_attr(Evaluator&, const Value& v, const Args& a) {
  if (a.pos.empty()) fail("attr: missing the attribute name");
  return getattr(v, need_string(a.pos[0], "attr"));
}

Value f_wordcount(Evaluator& ev, const Value& v, const Args&) {
  return Value::integer(static_cast<int64_t>(split(ev, to_str(v), nullptr, -1).size()));
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> m = {
      {"abs", f_abs},           {"attr", f_attr},
      {"capitalize", f_capitalize}, {"count", f_length},
      {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},
      {"escape", f_escape},     {"first", f_first},
      {"float", f_float},       {"int", f_int},
      {"indent", f_indent},     {"items", f_items},
      {"join", f_join},         {"last", f_last},
      {"length", f_length},     {"list", f_list},
      {"lower", f_lower},       {"map", f_map},
      {"max", f_max},           {"min", f_min},
      {"reject", f_reject},     {"rejectattr", f_rejectattr},
      {"replace", f_replace},   {"reverse", f_reverse},
      {"round", f_round},       {"safe", f_safe},
      {"select", f_select},     {"selectattr", f_selectattr},
      {"sort", f_sort},         {"string", f_string},
      {"sum", f_sum},           {"title", f_title},
      {"tojson", f_tojson},     {"trim", f_trim},
      {"unique", f_unique},     {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return m;
}

// ------------------------------------------------------------------ tests
bool t_defined(Evaluator&, const Value& v, const Args&) { return !v.is_undefined(); }
bool t_undefined(Evaluator&, const Value& v, const Args&) { return v.is_undefined(); }
bool t_none(Evaluator&, const Value& v, const Args&) { return v.is_none(); }
bool t_boolean(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Bool; }
bool t_true(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Bool && v.b; }
bool t_false(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Bool && !v.b; }
bool t_integer(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Int; }
bool t_float(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Float; }
bool t_number(Evaluator&, const Value& v, const Args&) { return v.is_number(); }
bool t_string(Evaluator&, const Value& v, const Args&) { return v.is_string(); }
bool t_mapping(Evaluator&, const Value& v, const Args&) { return v.is_dict() && !v.namespace_; }
bool t_iterable(Evaluator&, const Value& v, const Args&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_sequence(Evaluator&, const Value& v, const Args&) { return v.is_string() || v.is_list() || (v.is_dict() && !v.namespace_); }
bool t_callable(Evaluator&, const Value& v, const Args&) { return v.type == Value::Type::Func; }
const Value& other(const Args& a, const char* test) {
  if (a.pos.empty()) fail(std::string("test '") + test + "' needs an argument");
  return a.pos[0];
}
bool t_eq(Evaluator&, const Value& v, const Args& a) { return equals(v, other(a, "eq")); }
bool t_ne(Evaluator&, const Value& v, const Args& a) { return !equals(v, other(a, "ne")); }
bool t_lt(Evaluator&, const Value& v, const Args& a) { return compare(v, other(a, "lt"), "<") < 0; }
bool t_le(Evaluator&, const Value& v, const Args& a) { return compare(v, other(a, "le"), "<=") <= 0; }
bool t_gt(Evaluator&, const Value& v, const Args& a) { return compare(v, other(a, "gt"), ">") > 0; }
bool t_ge(Evaluator&, const Value& v, const Args& a) { return compare(v, other(a, "ge"), ">=") >= 0; }
bool t_in(Evaluator&, const Value& v, const Args& a) { return contains(other(a, "in"), v); }
bool t_sameas(Evaluator&, const Value& v, const Args& a) {
  const Value& o = other(a, "sameas");
  if (v.type != o.type) return false;
  switch (v.type) {
    case Value::Type::List: return v.list == o.list;
    case Value::Type::Dict: return v.dict == o.dict;
    case Value::Type::Func: return v.func == o.func;
    default: return equals(v, o);
  }
}
bool t_odd(Evaluator&, const Value& v, const Args&) { return need_int(v, "odd") % 2 != 0; }
bool t_even(Evaluator&, const Value& v, const Args&) { return need_int(v, "even") % 2 == 0; }
bool t_divisibleby(Evaluator&, const Value& v, const Args& a) {
  int64_t d = need_int(other(a, "divisibleby"), "divisibleby");
  if (d == 0) fail("divisibleby: division by zero");
  if (d == -1) return true;
  return need_int(v, "divisibleby") % d == 0;
}
bool t_lower(Evaluator&, const Value& v, const Args&) { return v.is_string() && lower(v.s) == v.s; }
bool t_upper(Evaluator&, const Value& v, const Args&) { return v.is_string() && upper(v.s) == v.s; }
bool t_escaped(Evaluator&, const Value&, const Args&) { return false; }
bool t_filter(Evaluator&, const Value& v, const Args&) { return v.is_string() && has_filter(v.s); }
bool t_test(Evaluator&, const Value& v, const Args&) { return v.is_string() && has_test(v.s); }

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> m = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none},       {"boolean", t_boolean},
      {"true", t_true},       {"false", t_false},         {"integer", t_integer}, {"float", t_float},
      {"number", t_number},   {"string", t_string},       {"mapping", t_mapping}, {"iterable", t_iterable},
      {"sequence", t_sequence}, {"callable", t_callable}, {"eq", t_eq},           {"equalto", t_eq},
      {"==", t_eq},           {"ne", t_ne},               {"!=", t_ne},           {"lt", t_lt},
      {"lessthan", t_lt},     {"<", t_lt},                {"le", t_le},           {"<=", t_le},
      {"gt", t_gt},           {"greaterthan", t_gt},      {">", t_gt},            {"ge", t_ge},
      {">=", t_ge},           {"in", t_in},               {"sameas", t_sameas},   {"odd", t_odd},
      {"even", t_even},       {"divisibleby", t_divisibleby}, {"lower", t_lower}, {"upper", t_upper},
      {"escaped", t_escaped}, {"filter", t_filter},       {"test", t_test},
  };
  return m;
}

// ------------------------------------------------------------------ methods
std::optional<Value> string_method(Evaluator& ev, const std::string& s, const std::string& name, const Args& a) {
  if (name == "strip") return Value::string(strip(s, arg(a, 0, "chars"), true, true));
  if (name == "lstrip") return Value::string(strip(s, arg(a, 0, "chars"), true, false));
  if (name == "rstrip") return Value::string(strip(s, arg(a, 0, "chars"), false, true));
  if (name == "upper") return Value::string(upper(s));
  if (name == "lower") return Value::string(lower(s));
  if (name == "title") return Value::string(py_title(s));
  if (name == "capitalize") return Value::string(capitalize(s));
  if (name == "split") {
    const Value* m = arg(a, 1, "maxsplit");
    return Value::make_list(split(ev, s, arg(a, 0, "sep"), m ? need_int(*m, "split maxsplit") : -1));
  }
  if (name == "splitlines") {
    List out;
    size_t b = 0;
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] == '\n' || s[k] == '\r') {
        out.push_back(Value::string(s.substr(b, k - b)));
        if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
        b = k + 1;
      }
    }
    if (b < s.size()) out.push_back(Value::string(s.substr(b)));
    ev.tick(out.size() / 16 + 1);
    return Value::make_list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* p = a.get(0, "prefix");
    if (!p) fail(name + "() takes at least 1 argument");
    std::vector<std::string> options;
    if (p->is_list()) {
      for (const Value& x : *p->list) options.push_back(need_string(x, name.c_str()));
    } else {
      options.push_back(need_string(*p, name.c_str()));
    }
    bool start = name == "startswith";
    for (const auto& o : options) {
      if (o.size() > s.size()) continue;
      if (start ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "replace") {
    const Value* from = a.get(0, "old");
    const Value* to = a.get(1, "new");
    if (!from || !to) fail("replace() takes at least 2 arguments");
    const Value* count = arg(a, 2, "count");
    return Value::string(replace(ev, s, need_string(*from, "replace"), need_string(*to, "replace"),
                                 count ? need_int(*count, "replace count") : -1));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    const Value* sub = a.get(0, "sub");
    if (!sub) fail(name + "() takes at least 1 argument");
    const std::string& n = need_string(*sub, name.c_str());
    if (name == "count") {
      if (n.empty()) return Value::integer(static_cast<int64_t>(code_point_count(s) + 1));
      int64_t c = 0;
      for (size_t p = s.find(n); p != std::string::npos; p = s.find(n, p + n.size())) ++c;
      return Value::integer(c);
    }
    size_t p = name == "rfind" ? s.rfind(n) : s.find(n);
    if (p == std::string::npos) {
      if (name == "index") fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(code_point_count(s.substr(0, p))));
  }
  if (name == "join") {
    const Value* items = a.get(0, "iterable");
    if (!items) fail("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& x : iterate_checked(ev, *items)) {
      if (!first) out += s;
      first = false;
      out += need_string(x, "join");
      check_size(ev, out.size());
    }
    return Value::string(std::move(out));
  }
  auto all = [&](auto pred) {
    if (s.empty()) return Value::boolean(false);
    return Value::boolean(std::all_of(s.begin(), s.end(), [&](char c) { return pred(static_cast<unsigned char>(c)); }));
  };
  if (name == "isdigit") return all([](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return all([](unsigned char c) { return std::isalpha(c) != 0; });
  if (name == "isalnum") return all([](unsigned char c) { return std::isalnum(c) != 0; });
  if (name == "isspace") return all([](unsigned char c) { return is_space(c); });
  if (name == "islower") return Value::boolean(lower(s) == s && upper(s) != s);
  if (name == "isupper") return Value::boolean(upper(s) == s && lower(s) != s);
  return std::nullopt;
}

std::optional<Value> dict_method(Evaluator& ev, const Value& d, const std::string& name, const Args& a) {
  if (name == "items") return f_items(ev, d, {});
  if (name == "keys" || name == "values") {
    List out;
    for (const auto& kv : d.dict->items) out.push_back(name == "keys" ? Value::string(kv.first) : kv.second);
    ev.tick(out.size() / 16 + 1);
    return Value::make_list(std::move(out));
  }
  if (name == "get") {
    const Value* key = a.get(0, "key");
    if (!key) fail("get() takes at least 1 argument");
    const Value* dflt = a.get(1, "default");
    if (!key->is_string()) return dflt ? *dflt : Value::none();
    const Value* v = d.dict->find(key->s);
    return v ? *v : dflt ? *dflt : Value::none();
  }
  return std::nullopt;
}

std::optional<Value> list_method(Evaluator&, const Value& l, const std::string& name, const Args& a) {
  if (name == "index" || name == "count") {
    const Value* x = a.get(0, "value");
    if (!x) fail(name + "() takes exactly one argument");
    int64_t n = 0;
    for (size_t k = 0; k < l.list->size(); ++k) {
      if (!equals((*l.list)[k], *x)) continue;
      if (name == "index") return Value::integer(static_cast<int64_t>(k));
      ++n;
    }
    if (name == "index") fail(repr(*x) + " is not in list");
    return Value::integer(n);
  }
  if (name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
      name == "clear" || name == "sort" || name == "reverse")
    fail("lists are immutable in chat templates (" + name + "() is not allowed)");
  return std::nullopt;
}

// Python-style int arithmetic with overflow detection (Python would switch to big integers).
// Takes the result by reference: it is read only after the overflow builtin has written it.
int64_t checked(bool overflow, const int64_t& v) {
  if (overflow) fail("integer overflow");
  return v;
}

int64_t floordiv(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) fail("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_fmod(double a, double b) {
  if (b == 0) fail("float modulo by zero");
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

Value repeat(const List* l, const std::string* s, int64_t n, bool tuple) {
  if (n <= 0) return l ? Value::make_list({}, tuple) : Value::string("");
  size_t unit = l ? l->size() : s->size();
  if (unit != 0 && static_cast<uint64_t>(n) > (64ull << 20) / unit) fail("repetition result too large");
  if (s) {
    std::string out;
    out.reserve(unit * static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) out += *s;
    return Value::string(std::move(out));
  }
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), l->begin(), l->end());
  return Value::make_list(std::move(out), tuple);
}

}  // namespace

// ------------------------------------------------------------------ public entry points
bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, const Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("unknown filter '" + name + "'");
  ev.tick();
  return it->second(ev, input, args);
}

bool apply_test(Evaluator& ev, const std::string& name, const Value& input, const Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) fail("unknown test '" + name + "'");
  ev.tick();
  return it->second(ev, input, args);
}

std::optional<Value> call_method(Evaluator& ev, const Value& obj, const std::string& name, const Args& args) {
  ev.tick();
  switch (obj.type) {
    case Value::Type::String: return string_method(ev, obj.s, name, args);
    case Value::Type::Dict: return obj.namespace_ ? std::nullopt : dict_method(ev, obj, name, args);
    case Value::Type::List: return list_method(ev, obj, name, args);
    default: return std::nullopt;
  }
}

Value global_function(const std::string& name) {
  if (name == "range")
    return func("range", [](Evaluator& ev, const Args& a) {
      if (a.pos.empty() || a.pos.size() > 3) fail("range() takes 1 to 3 integer arguments");
      int64_t start = 0, stop, step = 1;
      if (a.pos.size() == 1) {
        stop = need_int(a.pos[0], "range");
      } else {
        start = need_int(a.pos[0], "range");
        stop = need_int(a.pos[1], "range");
        if (a.pos.size() == 3) step = need_int(a.pos[2], "range");
      }
      if (step == 0) fail("range() step must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        ev.tick();
        out.push_back(Value::integer(i));
        if (__builtin_add_overflow(i, step, &i)) break;
      }
      return Value::make_list(std::move(out));
    });
  if (name == "namespace" || name == "dict")
    return func(name, [ns = name == "namespace"](Evaluator&, const Args& a) {
      auto d = std::make_shared<Dict>();
      for (const Value& p : a.pos) {
        if (!p.is_dict()) fail(std::string(ns ? "namespace" : "dict") + "(): positional argument must be a mapping");
        for (const auto& kv : p.dict->items) d->set(kv.first, kv.second);
      }
      for (const auto& kv : a.kw) d->set(kv.first, kv.second);
      Value v = Value::make_dict(d);
      v.namespace_ = ns;
      return v;
    });
  if (name == "raise_exception")
    return func("raise_exception", [](Evaluator&, const Args& a) -> Value {
      throw Raised{a.pos.empty() ? std::string("raise_exception() called") : to_str(a.pos[0])};
    });
  if (name == "strftime_now")
    return func("strftime_now", [](Evaluator& ev, const Args& a) {
      if (a.pos.empty()) fail("strftime_now() takes a format string");
      const std::string& fmt = need_string(a.pos[0], "strftime_now");
      if (fmt.size() > 256) fail("strftime_now(): format too long");
      std::time_t t = ev.fixed_time() ? *ev.fixed_time() : std::time(nullptr);
      std::tm tm{};
      if (ev.fixed_time()) gmtime_r(&t, &tm);
      else localtime_r(&t, &tm);
      char buf[1024];
      size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      if (n == 0 && !fmt.empty()) fail("strftime_now(): result too long or empty");
      return Value::string(std::string(buf, n));
    });
  return Value::undefined(name);
}

Value getattr(const Value& obj, const std::string& name) {
  require_defined(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict->find(name)) return *v;
  }
  return Value::undefined(name);
}

Value getitem(const Value& obj, const Value& key) {
  require_defined(obj);
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.dict->find(key.s)) return *v;
    }
    return Value::undefined(key.is_string() ? key.s : to_str(key));
  }
  if ((obj.is_list() || obj.is_string()) && (key.type == Value::Type::Int || key.type == Value::Type::Bool)) {
    int64_t i = key.type == Value::Type::Bool ? key.b : key.i;
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.list->size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("[" + std::to_string(key.i) + "]");
      return (*obj.list)[static_cast<size_t>(i)];
    }
    auto cps = code_points(obj.s);
    int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("[" + std::to_string(key.i) + "]");
    return Value::string(cps[static_cast<size_t>(i)]);
  }
  if (key.is_string()) return getattr(obj, key.s);
  return Value::undefined(to_str(key));
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  require_defined(obj);
  auto opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    return need_int(v, what);
  };
  std::optional<int64_t> b = opt(start, "slice start"), e = opt(stop, "slice stop"), s = opt(step, "slice step");
  int64_t st = s.value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  std::vector<std::string> cps;
  if (obj.is_string()) cps = code_points(obj.s);
  else if (!obj.is_list()) return Value::undefined("slice");
  int64_t n = static_cast<int64_t>(obj.is_string() ? cps.size() : obj.list->size());
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t lo = clamp(b, st > 0 ? 0 : n - 1), hi = clamp(e, st > 0 ? n : -1);
  std::string out_s;
  List out_l;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
    if (obj.is_string()) out_s += cps[static_cast<size_t>(i)];
    else out_l.push_back((*obj.list)[static_cast<size_t>(i)]);
    if ((st > 0 && i > std::numeric_limits<int64_t>::max() - st) || (st < 0 && i < std::numeric_limits<int64_t>::min() - st)) break;
  }
  if (obj.is_string()) return Value::string(std::move(out_s));
  return Value::make_list(std::move(out_l), obj.tuple);
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  require_defined(a);
  require_defined(b);
  bool ints = (a.type == Value::Type::Int || a.type == Value::Type::Bool) &&
              (b.type == Value::Type::Int || b.type == Value::Type::Bool);
  auto iv = [](const Value& v) { return v.type == Value::Type::Bool ? int64_t(v.b) : v.i; };
  if (a.is_number() && b.is_number()) {
    if (ints) {
      int64_t x = iv(a), y = iv(b), r = 0;
      if (op == "+") return Value::integer(checked(__builtin_add_overflow(x, y, &r), r));
      if (op == "-") return Value::integer(checked(__builtin_sub_overflow(x, y, &r), r));
      if (op == "*") return Value::integer(checked(__builtin_mul_overflow(x, y, &r), r));
      if (op == "//") return Value::integer(floordiv(x, y));
      if (op == "%") return Value::integer(py_mod(x, y));
      if (op == "**") {
        if (y < 0) return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
        int64_t acc = 1;
        for (int64_t k = 0; k < y; ++k) {
          if (__builtin_mul_overflow(acc, x, &acc)) fail("integer overflow");
          if (acc == 0 || acc == 1) break;
          if (acc == -1) {
            acc = ((y - k - 1) % 2 == 0) ? -1 : 1;
            break;
          }
        }
        return Value::integer(acc);
      }
    }
    double x = as_double(a), y = as_double(b);
    if (op == "+") return Value::number(x + y);
    if (op == "-") return Value::number(x - y);
    if (op == "*") return Value::number(x * y);
    if (op == "/") {
      if (y == 0) fail("division by zero");
      return Value::number(x / y);
    }
    if (op == "//") {
      if (y == 0) fail("float floor division by zero");
      return Value::number(std::floor(x / y));
    }
    if (op == "%") return Value::number(py_fmod(x, y));
    if (op == "**") return Value::number(std::pow(x, y));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.s.size() + b.s.size() > (64u << 20)) fail("string result too large");
      return Value::string(a.s + b.s);
    }
    if (a.is_list() && b.is_list() && a.tuple == b.tuple) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(out), a.tuple);
    }
  }
  if (op == "*") {
    if (a.is_string() && ints == false && (b.type == Value::Type::Int || b.type == Value::Type::Bool)) return repeat(nullptr, &a.s, iv(b), false);
    if (b.is_string() && (a.type == Value::Type::Int || a.type == Value::Type::Bool)) return repeat(nullptr, &b.s, iv(a), false);
    if (a.is_list() && (b.type == Value::Type::Int || b.type == Value::Type::Bool)) return repeat(a.list.get(), nullptr, iv(b), a.tuple);
    if (b.is_list() && (a.type == Value::Type::Int || a.type == Value::Type::Bool)) return repeat(b.list.get(), nullptr, iv(a), b.tuple);
  }
  if (op == "%" && a.is_string()) fail("printf-style string formatting ('%') is not supported");
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.type) {
    case Value::Type::Undefined: return false;
    case Value::Type::String:
      if (!item.is_string()) fail(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case Value::Type::List:
      return std::any_of(container.list->begin(), container.list->end(), [&](const Value& x) { return equals(x, item); });
    case Value::Type::Dict: return item.is_string() && container.dict->find(item.s) != nullptr;
    default: fail(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

List iterate(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return *v.list;
    case Value::Type::String: {
      List out;
      for (auto& cp : code_points(v.s)) out.push_back(Value::string(std::move(cp)));
      return out;
    }
    case Value::Type::Dict: {
      if (v.namespace_) break;
      List out;
      for (const auto& kv : v.dict->items) out.push_back(Value::string(kv.first));
      return out;
    }
    default: break;
  }
  fail(std::string("'") + type_name(v) + "' object is not iterable");
}

}  // namespace ssm::jinja

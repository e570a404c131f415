// Value semantics of the chat template engine, modelled on Python: truthiness, str()/repr(),
// float repr (shortest round-trip), equality and ordering, json.dumps as transformers' tojson calls
// it (ensure_ascii=False), and UTF-8 code point helpers so strings count and slice like Python str.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "runtime/chat_template_impl.hpp"

namespace ssm::jinja {

void fail(const std::string& message) { throw Failure{message}; }

Value Value::undefined(std::string hint) {
  Value v;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.type = Type::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.type = Type::Bool;
  v.b = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.type = Type::Int;
  v.i = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.type = Type::Float;
  v.f = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.type = Type::String;
  v.s = std::move(s);
  return v;
}
Value Value::make_list(List items, bool tuple) {
  Value v;
  v.type = Type::List;
  v.tuple = tuple;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::make_dict(std::shared_ptr<Dict> d) {
  Value v;
  v.type = Type::Dict;
  v.dict = std::move(d);
  return v;
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& kv : items)
    if (kv.first == key) return &kv.second;
  return nullptr;
}
void Dict::set(const std::string& key, Value v) {
  for (auto& kv : items)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

const Value* Args::kwarg(const std::string& name) const {
  for (const auto& kv : kw)
    if (kv.first == name) return &kv.second;
  return nullptr;
}
const Value* Args::get(size_t idx, const std::string& name) const {
  if (idx < pos.size()) return &pos[idx];
  return kwarg(name);
}

const char* type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "Undefined";
    case Value::Type::None: return "NoneType";
    case Value::Type::Bool: return "bool";
    case Value::Type::Int: return "int";
    case Value::Type::Float: return "float";
    case Value::Type::String: return "str";
    case Value::Type::List: return v.tuple ? "tuple" : "list";
    case Value::Type::Dict: return v.namespace_ ? "Namespace" : "dict";
    case Value::Type::Func: return "function";
  }
  return "?";
}

void require_defined(const Value& v) {
  if (v.is_undefined()) fail("'" + (v.s.empty() ? std::string("value") : v.s) + "' is undefined");
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return false;
    case Value::Type::Bool: return v.b;
    case Value::Type::Int: return v.i != 0;
    case Value::Type::Float: return v.f != 0.0;
    case Value::Type::String: return !v.s.empty();
    case Value::Type::List: return !v.list->empty();
    case Value::Type::Dict: return !v.dict->items.empty();
    case Value::Type::Func: return true;
  }
  return false;
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {  // shortest digits that round-trip
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string sci = buf;  // [-]d[.ddd]e[+-]xx
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  int exp = std::atoi(sci.c_str() + epos + 1);
  std::string digits = sci.substr(0, epos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      ip.append(exp + 1 > static_cast<int>(digits.size()) ? exp + 1 - digits.size() : 0, '0');
      std::string fp = static_cast<int>(digits.size()) > exp + 1 ? digits.substr(exp + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(-exp - 1, '0') + digits;
    }
  }
  if (out.empty()) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return neg ? "-" + out : out;
}

static std::string repr_string(const std::string& s) {
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(q)) out += std::string("\\") + q;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out + q;
}

std::string repr(const Value& v) {
  switch (v.type) {
    case Value::Type::String: return repr_string(v.s);
    case Value::Type::List: {
      std::string out = v.tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + repr((*v.list)[k]);
      if (v.tuple && v.list->size() == 1) out += ",";
      return out + (v.tuple ? ")" : "]");
    }
    case Value::Type::Dict: {
      std::string out = v.namespace_ ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& kv : v.dict->items) {
        out += (first ? "" : ", ") + repr_string(kv.first) + ": " + repr(kv.second);
        first = false;
      }
      return out + (v.namespace_ ? "}>" : "}");
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.b ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: return format_float(v.f);
    case Value::Type::String: return v.s;
    case Value::Type::Func: return "<function " + v.func->name + ">";
    default: return repr(v);
  }
}

double as_double(const Value& v) {
  switch (v.type) {
    case Value::Type::Bool: return v.b ? 1 : 0;
    case Value::Type::Int: return static_cast<double>(v.i);
    case Value::Type::Float: return v.f;
    default: fail(std::string("expected a number, got ") + type_name(v));
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type != Value::Type::Float && b.type != Value::Type::Float)
      return (a.type == Value::Type::Bool ? a.b : a.i) == (b.type == Value::Type::Bool ? b.b : b.i);
    return as_double(a) == as_double(b);
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.s == b.s;
    case Value::Type::List: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      return true;
    }
    case Value::Type::Dict: {
      if (a.dict == b.dict) return true;
      if (a.namespace_ || b.namespace_ || a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& kv : a.dict->items) {
        const Value* o = b.dict->find(kv.first);
        if (!o || !equals(kv.second, *o)) return false;
      }
      return true;
    }
    case Value::Type::Func: return a.func == b.func;
    default: return false;
  }
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.type == Value::Type::Int && b.type == Value::Type::Int) return a.i < b.i ? -1 : (a.i > b.i ? 1 : 0);
    double x = as_double(a), y = as_double(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return a.s.compare(b.s) < 0 ? -1 : (a.s == b.s ? 0 : 1);
  if (a.is_list() && b.is_list()) {
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k) {
      if (!equals((*a.list)[k], (*b.list)[k])) return compare((*a.list)[k], (*b.list)[k], op);
    }
    return a.list->size() < b.list->size() ? -1 : (a.list->size() > b.list->size() ? 1 : 0);
  }
  require_defined(a);
  require_defined(b);
  fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
       type_name(b) + "'");
}

static std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

static void json_dump(const Value& v, int indent, int level, bool sort_keys, const std::string& item_sep,
                      const std::string& key_sep, std::string& out) {
  if (level > 512) fail("tojson: value nested too deeply");
  std::string nl = indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent) * (level + 1), ' ') : "";
  std::string close_nl = indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent) * level, ' ') : "";
  switch (v.type) {
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.b ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.i); return;
    case Value::Type::Float:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
      else out += format_float(v.f);
      return;
    case Value::Type::String: out += json_string(v.s); return;
    case Value::Type::List: {
      if (v.list->empty()) { out += "[]"; return; }
      out += "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        out += (k ? item_sep : "") + nl;
        json_dump((*v.list)[k], indent, level + 1, sort_keys, item_sep, key_sep, out);
      }
      out += close_nl + "]";
      return;
    }
    case Value::Type::Dict: {
      if (v.namespace_) break;
      if (v.dict->items.empty()) { out += "{}"; return; }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* x, auto* y) { return x->first < y->first; });
      out += "{";
      for (size_t k = 0; k < items.size(); ++k) {
        out += (k ? item_sep : "") + nl + json_string(items[k]->first) + key_sep;
        json_dump(items[k]->second, indent, level + 1, sort_keys, item_sep, key_sep, out);
      }
      out += close_nl + "}";
      return;
    }
    default: break;
  }
  fail(std::string("tojson: object of type ") + type_name(v) + " is not JSON serializable");
}

std::string to_json(const Value& v, int indent, bool sort_keys, const std::string& item_sep,
                    const std::string& key_sep) {
  std::string out;
  json_dump(v, indent, 0, sort_keys, item_sep, key_sep, out);
  return out;
}

static size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xe) return 3;
  if ((c >> 3) == 0x1e) return 4;
  return 1;  // stray byte: its own "character"
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t k = 0; k < s.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(s[k])), s.size() - k);
    out.push_back(s.substr(k, n));
    k += n;
  }
  return out;
}

size_t code_point_count(const std::string& s) {
  size_t n = 0;
  for (size_t k = 0; k < s.size(); k += utf8_len(static_cast<unsigned char>(s[k]))) ++n;
  return n;
}

}  // namespace ssm::jinja

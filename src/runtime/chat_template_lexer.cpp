// Lexer of the chat template engine: splits the source into text, {{ }}, {% %} and {# #} pieces,
// applies Jinja2's whitespace control as transformers configures it (trim_blocks, lstrip_blocks,
// `-` strips all whitespace, `+` disables both) and {% raw %}, then tokenizes the inside of tags.
// Output: one flat token stream for the parser; errors carry the line number.
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/chat_template_impl.hpp"
#include "ssm/error.hpp"

namespace ssm::jinja {
namespace {

enum class PieceKind { Text, Var, Block, Comment, RawMarker };
struct Piece {
  Piece(PieceKind k, size_t st = 0, std::string t = {}) : kind(k), start(st), text(std::move(t)) {}
  PieceKind kind;
  size_t start = 0;     // Text: offset of its first byte in the source
  std::string text;     // Text contents
  char left = 0;        // '-' or '+' right after the opening delimiter
  char right = 0;       // '-' or '+' right before the closing delimiter
  int line = 1, col = 1;  // tags: position of the opening delimiter
  int end_line = 1, end_col = 1;  // tags: position of the closing delimiter
  std::vector<Token> tokens;
};

[[noreturn]] void syntax(int line, int col, const std::string& msg) { throw SyntaxError{line, col, msg}; }

std::string hex_byte(char c) {
  static const char* digits = "0123456789abcdef";
  unsigned char u = static_cast<unsigned char>(c);
  return std::string{digits[u >> 4], digits[u & 15]};
}

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    split();
    apply_whitespace();
    return flatten();
  }

 private:
  const std::string& src_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;  // offset of the current line's first byte
  std::vector<Piece> pieces_;

  int col() const { return static_cast<int>(pos_ - line_start_) + 1; }

  bool at(const char* s) const { return src_.compare(pos_, std::char_traits<char>::length(s), s) == 0; }
  void advance(size_t n) {
    for (size_t k = 0; k < n && pos_ < src_.size(); ++k, ++pos_)
      if (src_[pos_] == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      }
  }

  void split() {
    while (pos_ < src_.size()) {
      size_t next = src_.find('{', pos_);
      while (next != std::string::npos && next + 1 < src_.size() && (src_[next + 1] == '\0' || !std::strchr("{%#", src_[next + 1])))
        next = src_.find('{', next + 1);
      if (next == std::string::npos || next + 1 >= src_.size()) next = src_.size();
      if (next > pos_) pieces_.push_back({PieceKind::Text, pos_, src_.substr(pos_, next - pos_)});
      advance(next - pos_);
      if (pos_ < src_.size()) lex_tag();
    }
  }

  void lex_tag() {
    char kind = src_[pos_ + 1];
    int line = line_, column = col();
    advance(2);
    Piece p{kind == '{' ? PieceKind::Var : kind == '%' ? PieceKind::Block : PieceKind::Comment};
    p.line = line;
    p.col = column;
    if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) {
      p.left = src_[pos_];
      advance(1);
    }
    if (p.kind == PieceKind::Comment) return lex_comment(p, line, column);
    lex_tag_tokens(p, line, column);
    bool raw = p.kind == PieceKind::Block && p.tokens.size() == 1 && p.tokens[0].s == "raw" &&
               p.tokens[0].type == Token::Type::Name;
    if (raw) p.kind = PieceKind::RawMarker;
    pieces_.push_back(std::move(p));
    if (raw) lex_raw_body(line, column);
  }

  void lex_comment(Piece& p, int line, int column) {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) syntax(line, column, "unclosed comment '{#'");
    if (end > pos_ && (src_[end - 1] == '-' || src_[end - 1] == '+')) p.right = src_[end - 1];
    advance(end + 2 - pos_);
    pieces_.push_back(std::move(p));
  }

  // {% raw %}...{% endraw %}: the body is text; the endraw tag keeps its whitespace modifiers.
  void lex_raw_body(int line, int column) {
    size_t search = pos_;
    for (;;) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) syntax(line, column, "unclosed '{% raw %}' (missing '{% endraw %}')");
      size_t k = open + 2;
      char left = 0;
      if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) left = src_[k++];
      while (k < src_.size() && std::isspace(static_cast<unsigned char>(src_[k]))) ++k;
      if (src_.compare(k, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      k += 6;
      while (k < src_.size() && std::isspace(static_cast<unsigned char>(src_[k]))) ++k;
      char right = 0;
      if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) right = src_[k++];
      if (src_.compare(k, 2, "%}") != 0) syntax(line, column, "malformed '{% endraw %}'");
      pieces_.push_back({PieceKind::Text, pos_, src_.substr(pos_, open - pos_)});
      Piece end{PieceKind::RawMarker};
      end.left = left;
      end.right = right;
      advance(k + 2 - pos_);
      pieces_.push_back(std::move(end));
      return;
    }
  }

  // Tokens up to the closing delimiter (only recognised outside brackets, as Jinja2 does).
  void lex_tag_tokens(Piece& p, int open_line, int open_col) {
    const char* close = p.kind == PieceKind::Var ? "}}" : "%}";
    int depth = 0;
    for (;;) {
      while (pos_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos_]))) advance(1);
      if (pos_ >= src_.size())
        syntax(open_line, open_col, std::string("unclosed tag (missing '") + close + "')");
      if (depth == 0) {
        p.end_line = line_;
        p.end_col = col();
        if (at(close)) {
          advance(2);
          return;
        }
        if ((src_[pos_] == '-' || src_[pos_] == '+') && src_.compare(pos_ + 1, 2, close) == 0) {
          p.right = src_[pos_];
          advance(3);
          return;
        }
      }
      p.tokens.push_back(next_token(depth));
    }
  }

  Token next_token(int& depth) {
    Token t;
    t.type = Token::Type::Op;
    t.line = line_;
    t.col = col();
    char c = src_[pos_];
    if (is_name_start(c)) {
      size_t b = pos_;
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      t.type = Token::Type::Name;
      t.s = src_.substr(b, pos_ - b);
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return number(t);
    if (c == '\'' || c == '"') return string_literal(t);
    static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
    for (const char* op : ops) {
      if (at(op)) {
        t.s = op;
        advance(t.s.size());
        if (t.s == "(" || t.s == "[" || t.s == "{") ++depth;
        if ((t.s == ")" || t.s == "]" || t.s == "}") && depth > 0) --depth;
        return t;
      }
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      syntax(line_, col(), "unexpected byte 0x" + hex_byte(c));
    syntax(line_, col(), std::string("unexpected character '") + c + "'");
  }

  Token number(Token& t) {
    size_t b = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        pos_ = k;
        digits();
      }
    }
    std::string text;
    for (size_t k = b; k < pos_; ++k)
      if (src_[k] != '_') text += src_[k];
    if (is_float) {
      t.type = Token::Type::Float;
      t.f = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = Token::Type::Int;
      errno = 0;
      t.i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) syntax(t.line, t.col, "integer literal too large");
    }
    return t;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // Python string literal escapes: \n \t \r \\ \' \" \0 \xHH \uHHHH \UHHHHHHHH; others stay as written.
  Token string_literal(Token& t) {
    char q = src_[pos_];
    advance(1);
    t.type = Token::Type::String;
    for (;;) {
      if (pos_ >= src_.size()) syntax(t.line, t.col, "unterminated string literal");
      char c = src_[pos_];
      if (c == q) {
        advance(1);
        return t;
      }
      if (c != '\\' || pos_ + 1 >= src_.size()) {
        t.s += c;
        advance(1);
        continue;
      }
      char e = src_[pos_ + 1];
      advance(2);
      switch (e) {
        case 'n': t.s += '\n'; break;
        case 't': t.s += '\t'; break;
        case 'r': t.s += '\r'; break;
        case '0': t.s += '\0'; break;
        case 'a': t.s += '\a'; break;
        case 'b': t.s += '\b'; break;
        case 'f': t.s += '\f'; break;
        case 'v': t.s += '\v'; break;
        case '\\': case '\'': case '"': t.s += e; break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) syntax(line_, col(), "truncated \\" + std::string(1, e) + " escape");
          std::string hex = src_.substr(pos_, n);
          char* end = nullptr;
          unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          if (end != hex.c_str() + n || cp > 0x10ffff) syntax(line_, col(), "bad \\" + std::string(1, e) + " escape");
          append_utf8(t.s, static_cast<uint32_t>(cp));
          advance(n);
          break;
        }
        default: t.s += '\\'; t.s += e;
      }
    }
  }

  static bool is_tag(const Piece& p) { return p.kind != PieceKind::Text; }
  static bool is_block_like(const Piece& p) { return p.kind == PieceKind::Block || p.kind == PieceKind::Comment || p.kind == PieceKind::RawMarker; }

  void apply_whitespace() {
    for (size_t k = 0; k < pieces_.size(); ++k) {
      Piece& p = pieces_[k];
      if (p.kind != PieceKind::Text) continue;
      const Piece* prev = k > 0 && is_tag(pieces_[k - 1]) ? &pieces_[k - 1] : nullptr;
      const Piece* next = k + 1 < pieces_.size() && is_tag(pieces_[k + 1]) ? &pieces_[k + 1] : nullptr;
      size_t cut = 0;
      if (prev && prev->right == '-') {
        while (cut < p.text.size() && std::isspace(static_cast<unsigned char>(p.text[cut]))) ++cut;
      } else if (prev && is_block_like(*prev) && prev->right != '+') {  // trim_blocks
        if (p.text.compare(0, 1, "\n") == 0) cut = 1;
        else if (p.text.compare(0, 2, "\r\n") == 0) cut = 2;
      }
      p.text.erase(0, cut);
      p.start += cut;
      if (next && next->left == '-') {
        size_t e = p.text.size();
        while (e > 0 && std::isspace(static_cast<unsigned char>(p.text[e - 1]))) --e;
        p.text.resize(e);
      } else if (next && is_block_like(*next) && next->left != '+') {  // lstrip_blocks
        size_t nl = p.text.rfind('\n');
        size_t from = nl == std::string::npos ? 0 : nl + 1;
        bool line_start = nl != std::string::npos || p.start == 0 || src_[p.start - 1] == '\n';
        if (line_start && p.text.find_first_not_of(" \t", from) == std::string::npos) p.text.resize(from);
      }
    }
  }

  std::vector<Token> flatten() {
    std::vector<Token> out;
    int line = 1;
    size_t line_pos = 0;
    auto line_of = [&](size_t offset) {
      for (; line_pos < offset && line_pos < src_.size(); ++line_pos)
        if (src_[line_pos] == '\n') ++line;
      return line;
    };
    for (auto& p : pieces_) {
      if (p.kind == PieceKind::Text) {
        if (!p.text.empty()) out.push_back({Token::Type::Text, std::move(p.text), 0, 0, line_of(p.start), 1});
      } else if (p.kind == PieceKind::Var || p.kind == PieceKind::Block) {
        bool var = p.kind == PieceKind::Var;
        if (p.tokens.empty()) syntax(p.line, p.col, var ? "empty expression '{{ }}'" : "empty tag '{% %}'");
        out.push_back({var ? Token::Type::VarBegin : Token::Type::BlockBegin, "", 0, 0, p.line, p.col});
        for (auto& t : p.tokens) out.push_back(std::move(t));
        Token end{var ? Token::Type::VarEnd : Token::Type::BlockEnd, "", 0, 0, p.end_line, p.end_col};
        out.push_back(std::move(end));
      }
    }
    size_t last_nl = src_.rfind('\n');
    int end_col = static_cast<int>(src_.size() - (last_nl == std::string::npos ? 0 : last_nl + 1)) + 1;
    out.push_back({Token::Type::Eof, "", 0, 0, line_of(src_.size()), end_col});
    return out;
  }
};

}  // namespace

std::vector<Token> lex(const std::string& source) { return Lexer(source).run(); }

}  // namespace ssm::jinja

// Parser of the chat template engine: recursive descent over the lexer's tokens into the AST of
// chat_template_impl.hpp, with Jinja2's statements (if/for/set/macro/call/filter/raw/break/continue,
// transformers' {% generation %}) and expression precedence (conditional < or < and < not < compare
// < + - < ~ < * / // % < ** < unary < filters/tests < postfix). Unknown filters and tests, unclosed
// blocks and nesting deeper than kMaxNesting are syntax errors reported with their line.
#include <set>

#include "runtime/chat_template_impl.hpp"

namespace ssm::jinja {
namespace {

constexpr int kMaxNesting = 128;    // recursive descent depth (blocks, parentheses, unary chains)
constexpr int kMaxExprDepth = 256;  // height of one expression tree (a + b + c ..., a.b.c ...)

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<Template> run() {
    auto t = std::make_unique<Template>();
    t->body = parse_body({});
    if (cur().type != Token::Type::Eof) error("unexpected '{% " + peek_name(1) + " %}'");
    return t;
  }

 private:
  std::vector<Token> toks_;
  size_t p_ = 0;
  int depth_ = 0;

  struct DepthGuard {
    Parser& ps;
    explicit DepthGuard(Parser& p) : ps(p) {
      if (++ps.depth_ > kMaxNesting) ps.error("template nested too deeply");
    }
    ~DepthGuard() { --ps.depth_; }
  };

  const Token& cur() const { return toks_[p_]; }
  const Token& look(size_t k) const { return toks_[std::min(p_ + k, toks_.size() - 1)]; }
  struct Pos {
    int line, col;
  };
  Pos pos() const { return {cur().line, cur().col}; }
  [[noreturn]] void error(const std::string& msg) const { throw SyntaxError{cur().line, cur().col, msg}; }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Token::Type::Eof: return "end of template";
      case Token::Type::VarEnd: return "'}}'";
      case Token::Type::BlockEnd: return "'%}'";
      case Token::Type::Text: return "text";
      case Token::Type::String: return "string";
      case Token::Type::Int: case Token::Type::Float: return "number";
      default: return "'" + t.s + "'";
    }
  }
  std::string peek_name(size_t k) const { return look(k).type == Token::Type::Name ? look(k).s : ""; }
  bool is_op(const char* op) const { return cur().type == Token::Type::Op && cur().s == op; }
  bool is_name(const char* n) const { return cur().type == Token::Type::Name && cur().s == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++p_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Token::Type::Name) error("expected a name, got " + describe(cur()));
    return toks_[p_++].s;
  }
  void expect_block_end() {
    if (cur().type != Token::Type::BlockEnd) error("expected '%}', got " + describe(cur()));
    ++p_;
  }

  // ------------------------------------------------------------ statements
  // Parses until a block tag whose name is in `ends` (left unconsumed) or the end of the template.
  Body parse_body(const std::set<std::string>& ends) {
    DepthGuard g(*this);
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.type == Token::Type::Eof) {
        if (!ends.empty()) error("unexpected end of template: missing '{% " + *ends.rbegin() + " %}'");
        return body;
      }
      if (t.type == Token::Type::Text) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::Text;
        n->line = t.line;
        n->col = t.col;
        n->text = t.s;
        body.push_back(std::move(n));
        ++p_;
      } else if (t.type == Token::Type::VarBegin) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::Output;
        n->line = t.line;
        n->col = t.col;
        ++p_;
        n->expr = parse_tuple(true);
        if (cur().type != Token::Type::VarEnd) error("expected '}}', got " + describe(cur()));
        ++p_;
        body.push_back(std::move(n));
      } else if (t.type == Token::Type::BlockBegin) {
        std::string name = peek_name(1);
        if (ends.count(name)) return body;
        ++p_;
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  // Consumes "{% name" and requires it to be `name`.
  void expect_tag(const std::string& name) {
    if (cur().type != Token::Type::BlockBegin || peek_name(1) != name) error("expected '{% " + name + " %}'");
    p_ += 2;
  }

  NodePtr parse_statement() {
    Pos line = pos();
    std::string kw = expect_name();
    NodePtr n;
    if (kw == "if") n = parse_if();
    else if (kw == "for") n = parse_for();
    else if (kw == "set") n = parse_set();
    else if (kw == "macro") n = parse_macro();
    else if (kw == "call") n = parse_call_block();
    else if (kw == "filter") n = parse_filter_block();
    else if (kw == "generation") n = parse_scope("endgeneration");
    else if (kw == "break" || kw == "continue") {
      n = std::make_unique<Node>();
      n->kind = kw == "break" ? Node::Kind::Break : Node::Kind::Continue;
      expect_block_end();
    } else if (kw == "raw") {  // the lexer turned {% raw %} into text; only a stray endraw gets here
      error("unexpected '{% raw %}'");
    } else {
      --p_;
      error("unknown or misplaced tag '" + kw + "'");
    }
    n->line = line.line;
    n->col = line.col;
    return n;
  }

  NodePtr parse_if() {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::If;
    ExprPtr cond = parse_tuple(true);
    for (;;) {
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"});
      n->branches.emplace_back(std::move(cond), std::move(body));
      std::string which = peek_name(1);
      p_ += 2;
      if (which == "elif") {
        cond = parse_tuple(true);
        continue;
      }
      if (which == "else") {
        expect_block_end();
        n->branches.emplace_back(nullptr, parse_body({"endif"}));
        expect_tag("endif");
      }
      expect_block_end();
      return n;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = accept_op("(");
    do {
      names.push_back(expect_name());
    } while (accept_op(","));
    if (paren) expect_op(")");
    return names;
  }

  NodePtr parse_for() {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::For;
    n->targets = parse_targets();
    if (!accept_name("in")) error("expected 'in' in for loop, got " + describe(cur()));
    n->expr = parse_tuple(false);
    if (accept_name("if")) n->cond = parse_expression(false);
    if (is_name("recursive")) error("recursive for loops are not supported");
    expect_block_end();
    n->body = parse_body({"else", "endfor"});
    if (peek_name(1) == "else") {
      p_ += 2;
      expect_block_end();
      n->else_body = parse_body({"endfor"});
    }
    expect_tag("endfor");
    expect_block_end();
    return n;
  }

  NodePtr parse_set() {
    auto n = std::make_unique<Node>();
    n->targets.push_back(expect_name());
    if (accept_op(".")) {
      n->text = expect_name();  // ns.attr = ...
    } else {
      while (accept_op(",")) n->targets.push_back(expect_name());
    }
    if (accept_op("=")) {
      n->kind = Node::Kind::Set;
      n->expr = parse_tuple(true);
      expect_block_end();
      return n;
    }
    if (n->targets.size() != 1) error("expected '=' after set targets");
    n->kind = Node::Kind::SetBlock;
    if (accept_op("|")) n->expr = parse_filter_chain(nullptr);
    expect_block_end();
    n->body = parse_body({"endset"});
    expect_tag("endset");
    expect_block_end();
    return n;
  }

  std::vector<Param> parse_params() {
    std::vector<Param> params;
    expect_op("(");
    while (!accept_op(")")) {
      if (!params.empty()) expect_op(",");
      if (accept_op(")")) break;
      Param prm;
      prm.name = expect_name();
      if (accept_op("=")) prm.default_value = parse_expression(true);
      params.push_back(std::move(prm));
    }
    return params;
  }

  NodePtr parse_macro() {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::Macro;
    n->text = expect_name();
    n->params = parse_params();
    expect_block_end();
    n->body = parse_body({"endmacro"});
    expect_tag("endmacro");
    expect_block_end();
    return n;
  }

  NodePtr parse_call_block() {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::CallBlock;
    if (is_op("(")) n->params = parse_params();
    n->expr = parse_expression(true);
    if (n->expr->kind != Expr::Kind::Call) error("expected a call after '{% call'");
    expect_block_end();
    n->body = parse_body({"endcall"});
    expect_tag("endcall");
    expect_block_end();
    return n;
  }

  NodePtr parse_filter_block() {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::FilterBlock;
    n->expr = parse_filter_chain(nullptr);
    expect_block_end();
    n->body = parse_body({"endfilter"});
    expect_tag("endfilter");
    expect_block_end();
    return n;
  }

  NodePtr parse_scope(const std::string& end) {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::Scope;
    expect_block_end();
    n->body = parse_body({end});
    expect_tag(end);
    expect_block_end();
    return n;
  }

  // ------------------------------------------------------------ expressions
  ExprPtr make(Expr::Kind k, Pos at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  ExprPtr parse_tuple(bool with_condexpr) {
    Pos line = pos();
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::TupleLit, line);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().type == Token::Type::VarEnd || cur().type == Token::Type::BlockEnd || is_op("=")) break;
      t->args.push_back(parse_expression(with_condexpr));
    }
    return finish(std::move(t));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard g(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = make(Expr::Kind::Cond, pos());
      ++p_;
      ExprPtr cond = parse_or();
      ExprPtr other = accept_name("else") ? parse_condexpr() : nullptr;
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e));
      if (other) c->args.push_back(std::move(other));
      e = finish(std::move(c));
    }
    return e;
  }

  // Records the height of `e` from its operands; long operator / attribute / filter chains would
  // otherwise build trees deep enough to overflow the stack when evaluated or destroyed.
  ExprPtr finish(ExprPtr e) {
    int h = 0;
    for (const auto& a : e->args) h = std::max(h, a ? a->depth : 0);
    for (const auto& kv : e->kwargs) h = std::max(h, kv.second ? kv.second->depth : 0);
    e->depth = h + 1;
    if (e->depth > kMaxExprDepth) error("expression nested too deeply");
    return e;
  }

  ExprPtr binary(Expr::Kind k, ExprPtr a, ExprPtr b, Pos line, std::string op = {}) {
    auto e = make(k, line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return finish(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::Or, std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::And, std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this);
      auto e = make(Expr::Kind::Not, pos());
      ++p_;
      e->args.push_back(parse_not());
      return finish(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    Pos line = pos();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    for (;;) {
      std::string op;
      if (cur().type == Token::Type::Op &&
          (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == ">" || cur().s == "<=" || cur().s == ">=")) {
        op = cur().s;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek_name(1) == "in") {
        op = "not in";
        p_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? finish(std::move(cmp)) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().s;
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::Binary, std::move(e), parse_concat(), line, op);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::Binary, std::move(e), parse_math2(), line, "~");
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().s;
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::Binary, std::move(e), parse_pow(), line, op);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      Pos line = pos();
      ++p_;
      e = binary(Expr::Kind::Binary, std::move(e), parse_unary(true), line, "**");
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(cur().s == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, pos());
      ++p_;
      e->args.push_back(parse_unary(false));
      e = finish(std::move(e));
    } else {
      e = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filter_expr(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    Pos line{t.line, t.col};
    switch (t.type) {
      case Token::Type::Name: {
        ++p_;
        auto e = make(Expr::Kind::Literal, line);
        if (t.s == "true" || t.s == "True") e->literal = Value::boolean(true);
        else if (t.s == "false" || t.s == "False") e->literal = Value::boolean(false);
        else if (t.s == "none" || t.s == "None") e->literal = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.s;
        }
        return e;
      }
      case Token::Type::String: {
        std::string s;
        while (cur().type == Token::Type::String) s += toks_[p_++].s;  // adjacent literals concatenate
        auto e = make(Expr::Kind::Literal, line);
        e->literal = Value::string(std::move(s));
        return e;
      }
      case Token::Type::Int:
      case Token::Type::Float: {
        auto e = make(Expr::Kind::Literal, line);
        e->literal = t.type == Token::Type::Int ? Value::integer(t.i) : Value::number(t.f);
        ++p_;
        return e;
      }
      case Token::Type::Op:
        if (t.s == "(") return parse_paren();
        if (t.s == "[") return parse_list();
        if (t.s == "{") return parse_dict();
        break;
      default: break;
    }
    error("unexpected " + describe(t) + " in expression");
  }

  ExprPtr parse_paren() {
    Pos line = pos();
    ++p_;
    if (accept_op(")")) return make(Expr::Kind::TupleLit, line);
    ExprPtr e = parse_expression(true);
    if (is_op(",")) {
      auto t = make(Expr::Kind::TupleLit, line);
      t->args.push_back(std::move(e));
      while (accept_op(",")) {
        if (is_op(")")) break;
        t->args.push_back(parse_expression(true));
      }
      e = finish(std::move(t));
    }
    expect_op(")");
    return e;
  }

  ExprPtr parse_list() {
    auto e = make(Expr::Kind::ListLit, pos());
    ++p_;
    while (!accept_op("]")) {
      if (!e->args.empty()) {
        expect_op(",");
        if (accept_op("]")) break;
      }
      e->args.push_back(parse_expression(true));
    }
    return finish(std::move(e));
  }

  ExprPtr parse_dict() {
    auto e = make(Expr::Kind::DictLit, pos());
    ++p_;
    while (!accept_op("}")) {
      if (!e->args.empty()) {
        expect_op(",");
        if (accept_op("}")) break;
      }
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    return finish(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      Pos line = pos();
      if (accept_op(".")) {
        auto a = make(Expr::Kind::GetAttr, line);
        if (cur().type == Token::Type::Int) {  // x.0 means x[0]
          a->kind = Expr::Kind::GetItem;
          auto idx = make(Expr::Kind::Literal, line);
          idx->literal = Value::integer(toks_[p_++].i);
          a->args.push_back(std::move(e));
          a->args.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->args.push_back(std::move(e));
        }
        e = finish(std::move(a));
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::Call, line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = finish(std::move(c));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    Pos line = pos();
    ++p_;
    ExprPtr parts[3];
    int colons = 0;
    for (;;) {
      if (is_op("]")) break;
      if (accept_op(":")) {
        if (++colons > 2) error("too many ':' in subscript");
        continue;
      }
      if (parts[colons]) error("expected ':' or ']' in subscript");
      parts[colons] = parse_expression(true);
    }
    expect_op("]");
    if (colons == 0) {
      if (!parts[0]) error("empty subscript");
      auto e = make(Expr::Kind::GetItem, line);
      e->args.push_back(std::move(obj));
      e->args.push_back(std::move(parts[0]));
      return finish(std::move(e));
    }
    auto e = make(Expr::Kind::Slice, line);
    e->args.push_back(std::move(obj));
    for (auto& part : parts) {
      if (!part) {
        part = make(Expr::Kind::Literal, line);
        part->literal = Value::none();
      }
      e->args.push_back(std::move(part));
    }
    return finish(std::move(e));
  }

  // "(" [arg {"," arg}] ")" where arg = expr | name "=" expr; appended to e.args / e.kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!accept_op(")")) {
      if (!first) {
        expect_op(",");
        if (accept_op(")")) break;
      }
      first = false;
      if (cur().type == Token::Type::Name && look(1).type == Token::Type::Op && look(1).s == "=") {
        std::string name = toks_[p_].s;
        p_ += 2;
        e.kwargs.emplace_back(name, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
  }

  // One or more `| name(args)` applied to `input` (null input: filter block / set block).
  ExprPtr parse_filter_chain(ExprPtr input) {
    do {
      Pos line = pos();
      auto f = make(Expr::Kind::Filter, line);
      f->name = expect_name();
      while (accept_op(".")) f->name += "." + expect_name();
      if (!has_filter(f->name)) {
        --p_;
        error("unknown filter '" + f->name + "'");
      }
      auto placeholder = make(Expr::Kind::Literal, line);
      f->args.push_back(input ? std::move(input) : std::move(placeholder));
      if (is_op("(")) parse_call_args(*f);
      input = finish(std::move(f));
    } while (accept_op("|"));
    return input;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_test(ExprPtr e) {
    auto t = make(Expr::Kind::Test, pos());
    ++p_;
    t->negated = accept_name("not");
    t->name = expect_name();
    if (!has_test(t->name)) {
      --p_;
      error("unknown test '" + t->name + "'");
    }
    t->args.push_back(std::move(e));
    static const std::set<std::string> stop = {"else", "or", "and", "if", "is", "not"};
    const Token& c = cur();
    if (is_op("(")) {
      parse_call_args(*t);
    } else if ((c.type == Token::Type::Name && !stop.count(c.s)) || c.type == Token::Type::String ||
               c.type == Token::Type::Int || c.type == Token::Type::Float || is_op("[") || is_op("{")) {
      t->args.push_back(parse_postfix(parse_primary()));
    }
    return finish(std::move(t));
  }
};

}  // namespace

std::unique_ptr<Template> parse(const std::string& source) { return Parser(lex(source)).run(); }

}  // namespace ssm::jinja

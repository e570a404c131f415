// Internals of the chat template engine (not a public header): the dynamic Value type with Python
// semantics, the token stream, the AST and the entry points of lexer, parser and evaluator.
// Pipeline: lex() -> tokens (whitespace control already applied) -> parse() -> Template (AST) ->
// render() walks the AST. Errors inside are jinja::SyntaxError (lexer/parser, with position),
// jinja::Failure (evaluation, position added by render()) or Raised (raise_exception()).
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ssm::jinja {

// ---------------------------------------------------------------- errors
struct Failure {  // an error without position; the evaluator adds the line
  std::string message;
};
struct SyntaxError {  // lexer / parser error at a source position (1-based line and column)
  int line = 1, col = 1;
  std::string message;
};
struct Raised {  // raise_exception(message): surfaces as ssm::Error(message) verbatim
  std::string message;
};
[[noreturn]] void fail(const std::string& message);

// ---------------------------------------------------------------- values
struct Value;
struct Dict;
struct Callable;
using List = std::vector<Value>;

struct Value {
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Func };
  Type type = Type::Undefined;
  bool b = false;
  bool tuple = false;      // List printed as (a, b)
  bool namespace_ = false; // Dict created by namespace(): mutable, shared
  int64_t i = 0;
  double f = 0;
  std::string s;  // String contents; for Undefined the hint used in error messages
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Callable> func;

  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List items, bool tuple = false);
  static Value make_dict(std::shared_ptr<Dict> d);
  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_list() const { return type == Type::List; }
  bool is_dict() const { return type == Type::Dict; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, like a Python dict
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* kwarg(const std::string& name) const;
  // positional index `idx` or keyword `name`, else nullptr
  const Value* get(size_t idx, const std::string& name) const;
};

class Evaluator;
struct Callable {
  std::string name;
  std::function<Value(Evaluator&, const Args&)> fn;
};

// value helpers (chat_template_value.cpp)
const char* type_name(const Value& v);
bool truthy(const Value& v);
std::string to_str(const Value& v);   // Python str()
std::string repr(const Value& v);     // Python repr()
std::string format_float(double d);   // Python float repr
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, const char* op);  // <0, 0, >0; fails if unordered
double as_double(const Value& v);
std::string to_json(const Value& v, int indent, bool sort_keys, const std::string& item_sep,
                    const std::string& key_sep);
void require_defined(const Value& v);
// UTF-8 helpers: strings index, slice and count by code point like Python str
std::vector<std::string> code_points(const std::string& s);
size_t code_point_count(const std::string& s);

// ---------------------------------------------------------------- tokens
struct Token {
  enum class Type : uint8_t { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Int, Float, String, Op, Eof };
  Type type = Type::Eof;
  std::string s;  // text, name, string contents or operator
  int64_t i = 0;
  double f = 0;
  int line = 1, col = 1;
};
std::vector<Token> lex(const std::string& source);

// ---------------------------------------------------------------- AST
struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Expr {
  enum class Kind : uint8_t {
    Literal, Name, GetAttr, GetItem, Slice, Call, Filter, Test, Neg, Pos, Not, And, Or, Binary, Compare,
    Cond, ListLit, TupleLit, DictLit
  };
  Kind kind;
  int line = 1, col = 1;
  int depth = 1;                 // height of this subtree (bounded by the parser)
  Value literal;
  std::string name;              // Name / GetAttr attribute / Filter / Test / Binary operator
  bool negated = false;          // `is not`
  std::vector<ExprPtr> args;     // operands, then positional call/filter/test arguments
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare operators
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;
struct Param {
  std::string name;
  ExprPtr default_value;
};
struct Node {
  enum class Kind : uint8_t { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, Scope };
  Kind kind;
  int line = 1, col = 1;
  std::string text;                  // Text; Macro name; Set attribute (ns.attr)
  ExprPtr expr;                      // Output, Set value, For iterable, CallBlock call, FilterBlock filter
  ExprPtr cond;                      // For `if` filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: condition (null = else) and body
  std::vector<std::string> targets;  // For / Set names
  Body body, else_body;
  std::vector<Param> params;         // Macro / CallBlock(caller args)
};

struct Template {
  Body body;
};
std::unique_ptr<Template> parse(const std::string& source);

// ---------------------------------------------------------------- evaluation
struct Limits {
  size_t max_output = 64u << 20;        // bytes of output (including captured blocks)
  int max_depth = 64;                   // nested macro / call-block invocations
  uint64_t max_iterations = 1'000'000;  // loop iterations and builtin element work in total
};
// Throws Failure with "line L, column C: " prefixed, or Raised.
std::string render(const Template& t, const std::shared_ptr<Dict>& context, std::optional<std::time_t> fixed_time,
                   const Limits& limits = {});

// What builtins need from the evaluator (defined in chat_template_eval.cpp).
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual void tick(uint64_t work = 1) = 0;            // counts work against Limits::max_iterations
  virtual Value call(const Value& fn, const Args& args) = 0;
  virtual std::optional<std::time_t> fixed_time() const = 0;
  virtual const Limits& limits() const = 0;
};

// builtins (chat_template_builtins.cpp)
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, const Args& args);
bool apply_test(Evaluator& ev, const std::string& name, const Value& input, const Args& args);
std::optional<Value> call_method(Evaluator& ev, const Value& obj, const std::string& name, const Args& args);
Value global_function(const std::string& name);  // Undefined if not a builtin global
Value getattr(const Value& obj, const std::string& name);
Value getitem(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
Value binary_op(const std::string& op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
List iterate(const Value& v);  // for-loop / filter iteration (Undefined -> empty)

}  // namespace ssm::jinja

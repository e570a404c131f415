// Evaluator of the chat template engine: walks the AST with Jinja2's scoping (each for-loop
// iteration and macro call gets its own frame; `set` writes the innermost frame; namespace()
// objects are shared and mutable), loop variables, break/continue, macros with caller(), and
// resource limits (output size, loop work, macro depth) so bad templates fail instead of hanging.
#include <unordered_map>

#include "runtime/chat_template_impl.hpp"

namespace ssm::jinja {
namespace {

enum class Flow { Normal, Break, Continue };
using Frame = std::unordered_map<std::string, Value>;

class Renderer final : public Evaluator {
 public:
  Renderer(const std::shared_ptr<Dict>& context, std::optional<std::time_t> fixed_time, const Limits& limits)
      : limits_(limits), fixed_time_(fixed_time) {
    frames_.emplace_back();
    for (const auto& kv : context->items) frames_[0][kv.first] = kv.second;
  }

  std::string run(const Template& t) {
    std::string out;
    out_ = &out;
    exec_body(t.body);
    return out;
  }

  int line() const { return line_; }
  int col() const { return col_; }
  const Limits& limits() const override { return limits_; }

  void tick(uint64_t work) override {
    work_ += work;
    if (work_ > limits_.max_iterations) fail("too many loop iterations (limit " + std::to_string(limits_.max_iterations) + ")");
  }
  std::optional<std::time_t> fixed_time() const override { return fixed_time_; }
  Value call(const Value& fn, const Args& args) override {
    if (fn.type != Value::Type::Func) {
      require_defined(fn);
      fail(std::string("'") + type_name(fn) + "' object is not callable");
    }
    return fn.func->fn(*this, args);
  }

 private:
  Limits limits_;
  std::optional<std::time_t> fixed_time_;
  std::vector<Frame> frames_;
  size_t barrier_ = 0;  // lookups see frames_[barrier_..] and then frames_[0] (macro isolation)
  std::string* out_ = nullptr;
  uint64_t work_ = 0;
  int depth_ = 0;      // nested macro / caller invocations
  int recursion_ = 0;  // nested eval() / exec() calls
  int line_ = 1, col_ = 1;

  // Bounds the C++ recursion of the tree walk (deep macro recursion over deep expressions).
  struct RecursionGuard {
    Renderer& r;
    explicit RecursionGuard(Renderer& rr) : r(rr) {
      if (++r.recursion_ > kMaxRecursion) {
        --r.recursion_;
        fail("template recursion too deep");
      }
    }
    ~RecursionGuard() { --r.recursion_; }
  };
  static constexpr int kMaxRecursion = 1000;
  void at(int line, int col) {
    line_ = line;
    col_ = col;
  }

  // ------------------------------------------------------------ scopes
  const Value* lookup(const std::string& name) const {
    for (size_t k = frames_.size(); k-- > barrier_;) {
      auto it = frames_[k].find(name);
      if (it != frames_[k].end()) return &it->second;
    }
    if (barrier_ > 0) {
      auto it = frames_[0].find(name);
      if (it != frames_[0].end()) return &it->second;
    }
    return nullptr;
  }
  void assign(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

  struct FrameGuard {
    Renderer& r;
    size_t saved_barrier;
    FrameGuard(Renderer& rr, bool isolate) : r(rr), saved_barrier(rr.barrier_) {
      r.frames_.emplace_back();
      if (isolate) r.barrier_ = r.frames_.size() - 1;
    }
    ~FrameGuard() {
      r.frames_.pop_back();
      r.barrier_ = saved_barrier;
    }
  };

  void emit(const std::string& s) {
    if (out_->size() + s.size() > limits_.max_output)
      fail("output exceeds " + std::to_string(limits_.max_output >> 20) + " MiB");
    out_->append(s);
  }

  std::string capture(const Body& body) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
      exec_body(body);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    if (saved->size() + buf.size() > limits_.max_output) fail("output exceeds limit");
    return buf;
  }

  // ------------------------------------------------------------ statements
  Flow exec_body(const Body& body) {
    for (const auto& n : body) {
      Flow f = exec(*n);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n) {
    RecursionGuard rg(*this);
    at(n.line, n.col);
    switch (n.kind) {
      case Node::Kind::Text: emit(n.text); return Flow::Normal;
      case Node::Kind::Output: emit(to_str(eval(*n.expr))); return Flow::Normal;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || truthy(eval(*cond))) return exec_body(body);
        return Flow::Normal;
      case Node::Kind::For: return exec_for(n);
      case Node::Kind::Set: exec_set(n, eval(*n.expr)); return Flow::Normal;
      case Node::Kind::SetBlock: {
        Value v = Value::string(capture(n.body));
        exec_set(n, n.expr ? apply_chain(*n.expr, v) : v);
        return Flow::Normal;
      }
      case Node::Kind::Macro: assign(n.text, make_macro(n.text, n.params, n.body)); return Flow::Normal;
      case Node::Kind::CallBlock: exec_call_block(n); return Flow::Normal;
      case Node::Kind::FilterBlock: emit(to_str(apply_chain(*n.expr, Value::string(capture(n.body))))); return Flow::Normal;
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::Scope: return exec_body(n.body);
    }
    return Flow::Normal;
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      assign(targets[0], v);
      return;
    }
    if (!v.is_list()) fail(std::string("cannot unpack '") + type_name(v) + "' into " + std::to_string(targets.size()) + " names");
    if (v.list->size() != targets.size())
      fail("cannot unpack " + std::to_string(v.list->size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t k = 0; k < targets.size(); ++k) assign(targets[k], (*v.list)[k]);
  }

  void exec_set(const Node& n, const Value& v) {
    if (n.text.empty()) return bind_targets(n.targets, v);
    const Value* ns = lookup(n.targets[0]);
    if (!ns || !ns->is_dict() || !ns->namespace_)
      fail("cannot assign attribute '" + n.text + "' on '" + n.targets[0] + "': not a namespace");
    tick(1);
    ns->dict->set(n.text, v);
  }

  Flow exec_for(const Node& n) {
    List items = iterate(eval(*n.expr));
    tick(items.size() / 16 + 1);
    if (n.cond) {  // `for x in xs if cond`: filter first, loop.length counts the kept items
      List kept;
      for (const auto& item : items) {
        FrameGuard g(*this, false);
        bind_targets(n.targets, item);
        tick(1);
        if (truthy(eval(*n.cond))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return n.else_body.empty() ? Flow::Normal : exec_body(n.else_body);
    for (size_t k = 0; k < items.size(); ++k) {
      tick(1);
      FrameGuard g(*this, false);
      assign("loop", loop_value(items, k));
      bind_targets(n.targets, items[k]);
      if (exec_body(n.body) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value loop_value(const List& items, size_t k) {
    auto d = std::make_shared<Dict>();
    int64_t len = static_cast<int64_t>(items.size()), i = static_cast<int64_t>(k);
    d->items = {{"index", Value::integer(i + 1)}, {"index0", Value::integer(i)},
                {"revindex", Value::integer(len - i)}, {"revindex0", Value::integer(len - i - 1)},
                {"first", Value::boolean(k == 0)}, {"last", Value::boolean(i == len - 1)},
                {"length", Value::integer(len)}, {"depth", Value::integer(1)}, {"depth0", Value::integer(0)}};
    if (k > 0) d->items.emplace_back("previtem", items[k - 1]);
    if (i + 1 < len) d->items.emplace_back("nextitem", items[k + 1]);
    auto cycle = std::make_shared<Callable>();
    cycle->name = "loop.cycle";
    cycle->fn = [k](Evaluator&, const Args& a) {
      if (a.pos.empty()) fail("loop.cycle() needs at least one argument");
      return a.pos[k % a.pos.size()];
    };
    Value c;
    c.type = Value::Type::Func;
    c.func = cycle;
    d->items.emplace_back("cycle", c);
    return Value::make_dict(d);
  }

  // ------------------------------------------------------------ macros
  Value make_macro(const std::string& name, const std::vector<Param>& params, const Body& body) {
    auto c = std::make_shared<Callable>();
    c->name = name;
    c->fn = [this, name, &params, &body](Evaluator&, const Args& a) { return invoke(name, params, body, a); };
    Value v;
    v.type = Value::Type::Func;
    v.func = c;
    return v;
  }

  Value invoke(const std::string& name, const std::vector<Param>& params, const Body& body, const Args& a) {
    if (depth_ >= limits_.max_depth) fail("macro recursion too deep (limit " + std::to_string(limits_.max_depth) + ")");
    if (a.pos.size() > params.size()) fail("macro '" + name + "' takes " + std::to_string(params.size()) + " arguments");
    ++depth_;
    int saved_line = line_, saved_col = col_;
    FrameGuard g(*this, true);
    for (size_t k = 0; k < params.size(); ++k) {
      const Value* given = a.get(k, params[k].name);
      if (given) assign(params[k].name, *given);
      else if (params[k].default_value) assign(params[k].name, eval(*params[k].default_value));
      else assign(params[k].name, Value::undefined(params[k].name));
    }
    if (const Value* caller = a.kwarg("caller")) assign("caller", *caller);
    std::string text = capture(body);
    --depth_;
    at(saved_line, saved_col);
    return Value::string(std::move(text));
  }

  void exec_call_block(const Node& n) {
    const Expr& call = *n.expr;
    Value callee = eval(*call.args[0]);
    if (callee.type != Value::Type::Func) fail("'{% call %}' target is not a macro");
    Args a = eval_args(call, 1);
    // caller(): renders the block body in the scope of the call site
    auto c = std::make_shared<Callable>();
    c->name = "caller";
    size_t site_barrier = barrier_, site_frames = frames_.size();
    c->fn = [this, &n, site_barrier, site_frames](Evaluator&, const Args& ca) {
      std::vector<Frame> hidden(frames_.begin() + site_frames, frames_.end());
      frames_.resize(site_frames);
      size_t saved_barrier = barrier_;
      barrier_ = site_barrier;
      Value result;
      {
        FrameGuard g(*this, false);
        for (size_t k = 0; k < n.params.size(); ++k) {
          const Value* given = ca.get(k, n.params[k].name);
          assign(n.params[k].name, given ? *given : n.params[k].default_value ? eval(*n.params[k].default_value) : Value::undefined(n.params[k].name));
        }
        if (++depth_ > limits_.max_depth) fail("call block recursion too deep");
        result = Value::string(capture(n.body));
        --depth_;
      }
      barrier_ = saved_barrier;
      for (auto& f : hidden) frames_.push_back(std::move(f));
      return result;
    };
    Value caller;
    caller.type = Value::Type::Func;
    caller.func = c;
    Args with_caller = a;
    with_caller.kw.emplace_back("caller", caller);
    emit(to_str(callee.func->fn(*this, with_caller)));
  }

  // ------------------------------------------------------------ expressions
  Args eval_args(const Expr& e, size_t first) {
    Args a;
    for (size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [name, ex] : e.kwargs) a.kw.emplace_back(name, eval(*ex));
    return a;
  }

  Value apply_chain(const Expr& f, const Value& body) {
    const Expr& inner = *f.args[0];
    Value input = inner.kind == Expr::Kind::Filter ? apply_chain(inner, body) : body;
    return apply_filter(*this, f.name, input, eval_args(f, 1));
  }

  Value eval(const Expr& e) {
    RecursionGuard rg(*this);
    at(e.line, e.col);
    switch (e.kind) {
      case Expr::Kind::Literal: return e.literal;
      case Expr::Kind::Name: {
        if (const Value* v = lookup(e.name)) return *v;
        Value g = global_function(e.name);
        return g.is_undefined() ? Value::undefined(e.name) : g;
      }
      case Expr::Kind::GetAttr: return getattr(eval(*e.args[0]), e.name);
      case Expr::Kind::GetItem: return getitem(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Slice:
        return slice(eval(*e.args[0]), eval(*e.args[1]), eval(*e.args[2]), eval(*e.args[3]));
      case Expr::Kind::Call: return eval_call(e);
      case Expr::Kind::Filter: {
        Value input = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        at(e.line, e.col);
        return apply_filter(*this, e.name, input, a);
      }
      case Expr::Kind::Test: {
        Value input = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        at(e.line, e.col);
        return Value::boolean(apply_test(*this, e.name, input, a) != e.negated);
      }
      case Expr::Kind::Neg:
      case Expr::Kind::Pos: {
        Value v = eval(*e.args[0]);
        require_defined(v);
        if (!v.is_number()) fail(std::string("bad operand type for unary ") + (e.kind == Expr::Kind::Neg ? "-" : "+") + ": '" + type_name(v) + "'");
        if (e.kind == Expr::Kind::Pos) return v.type == Value::Type::Bool ? Value::integer(v.b) : v;
        if (v.type == Value::Type::Float) return Value::number(-v.f);
        return Value::integer(-(v.type == Value::Type::Bool ? int64_t(v.b) : v.i));
      }
      case Expr::Kind::Not: return Value::boolean(!truthy(eval(*e.args[0])));
      case Expr::Kind::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case Expr::Kind::Binary: {
        Value a = eval(*e.args[0]);
        Value b = eval(*e.args[1]);
        at(e.line, e.col);
        Value r = binary_op(e.name, a, b);
        if (r.is_string() && r.s.size() > limits_.max_output) fail("string exceeds output limit");
        return r;
      }
      case Expr::Kind::Compare: return eval_compare(e);
      case Expr::Kind::Cond:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args.size() > 2 ? eval(*e.args[2]) : Value::undefined();
      case Expr::Kind::ListLit:
      case Expr::Kind::TupleLit: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::make_list(std::move(items), e.kind == Expr::Kind::TupleLit);
      }
      case Expr::Kind::DictLit: {
        auto d = std::make_shared<Dict>();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          d->set(key.is_string() ? key.s : to_str(key), eval(*e.args[k + 1]));
        }
        return Value::make_dict(d);
      }
    }
    return Value::undefined();
  }

  Value eval_compare(const Expr& e) {
    Value left = eval(*e.args[0]);
    for (size_t k = 0; k < e.ops.size(); ++k) {
      Value right = eval(*e.args[k + 1]);
      at(e.line, e.col);
      const std::string& op = e.ops[k];
      bool ok;
      if (op == "==") ok = equals(left, right);
      else if (op == "!=") ok = !equals(left, right);
      else if (op == "in") ok = contains(right, left);
      else if (op == "not in") ok = !contains(right, left);
      else {
        int c = compare(left, right, op.c_str());
        ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
      }
      if (!ok) return Value::boolean(false);
      left = std::move(right);
    }
    return Value::boolean(true);
  }

  Value eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::Kind::GetAttr) {  // method call: "x".strip(), d.get(k), ...
      Value obj = eval(*callee.args[0]);
      Args a = eval_args(e, 1);
      at(e.line, e.col);
      if (obj.is_dict()) {
        const Value* member = obj.dict->find(callee.name);
        if (member && member->type == Value::Type::Func) return call(*member, a);
      }
      if (auto r = call_method(*this, obj, callee.name, a)) return *r;
      require_defined(obj);
      fail(std::string("'") + type_name(obj) + "' object has no method '" + callee.name + "'");
    }
    Value fn = eval(callee);
    Args a = eval_args(e, 1);
    at(e.line, e.col);
    if (fn.is_undefined()) fail("'" + fn.s + "' is undefined (not a function)");
    return call(fn, a);
  }
};

}  // namespace

std::string render(const Template& t, const std::shared_ptr<Dict>& context, std::optional<std::time_t> fixed_time,
                   const Limits& limits) {
  Renderer r(context, fixed_time, limits);
  try {
    return r.run(t);
  } catch (const Failure& f) {
    throw Failure{"line " + std::to_string(r.line()) + ", column " + std::to_string(r.col()) + ": " + f.message};
  }
}

}  // namespace ssm::jinja

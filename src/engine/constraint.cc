#include "engine/constraint.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "base/error.h"

namespace dsv4 {

std::shared_ptr<const TokenTable> TokenTable::build(const Tokenizer& tok, int32_t eos_id, int64_t model_vocab) {
  auto t = std::make_shared<TokenTable>();
  const int64_t n = std::max<int64_t>(model_vocab, tok.vocab_size());
  t->bytes.resize(static_cast<size_t>(n));
  t->special.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    try {
      t->bytes[static_cast<size_t>(id)] = tok.token_bytes(id);
      t->special[static_cast<size_t>(id)] = tok.is_special(id) ? 1 : 0;
    } catch (const Error&) {
      // a hole in the vocabulary: stays empty, never allowed
    }
  }
  t->eos = eos_id;
  return t;
}

size_t TokenConstraint::mask(std::span<float> logits) const {
  // One pass over the vocabulary (allows() may simulate several bytes per token).
  thread_local std::vector<uint8_t> ok;
  ok.assign(logits.size(), 0);
  size_t allowed = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (allows(static_cast<int32_t>(i))) {
      ok[i] = 1;
      ++allowed;
    }
  if (allowed == 0) return 0;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i)
    if (!ok[i]) logits[i] = ninf;
  return allowed;
}

// ---------------------------------------------------------------- UTF-8

namespace {
uint32_t utf8_pack(uint32_t need, uint32_t lo, uint32_t hi) { return need << 16 | lo << 8 | hi; }
}  // namespace

bool utf8_step(uint32_t& state, unsigned char c) {
  if (state == 0) {
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF) state = utf8_pack(1, 0x80, 0xBF);
    else if (c == 0xE0) state = utf8_pack(2, 0xA0, 0xBF);  // no overlong 3-byte forms
    else if (c == 0xED) state = utf8_pack(2, 0x80, 0x9F);  // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) state = utf8_pack(2, 0x80, 0xBF);
    else if (c == 0xF0) state = utf8_pack(3, 0x90, 0xBF);  // no overlong 4-byte forms
    else if (c >= 0xF1 && c <= 0xF3) state = utf8_pack(3, 0x80, 0xBF);
    else if (c == 0xF4) state = utf8_pack(3, 0x80, 0x8F);  // at most U+10FFFF
    else return false;
    return true;
  }
  const uint32_t need = state >> 16, lo = (state >> 8) & 0xFF, hi = state & 0xFF;
  if (c < lo || c > hi) return false;
  state = need > 1 ? utf8_pack(need - 1, 0x80, 0xBF) : 0;
  return true;
}

// ---------------------------------------------------------------- ChoiceConstraint

ChoiceConstraint::ChoiceConstraint(std::vector<std::vector<int32_t>> options)
    : options_(std::move(options)), alive_(options_.size(), 1) {
  if (options_.empty()) throw Error("ChoiceConstraint needs at least one option");
  for (const auto& o : options_)
    if (o.empty()) throw Error("ChoiceConstraint: an option is empty");
}

bool ChoiceConstraint::allows(int32_t token) const {
  if (done_) return false;
  for (size_t i = 0; i < options_.size(); ++i)
    if (alive_[i] && pos_ < options_[i].size() && options_[i][pos_] == token) return true;
  return false;
}

void ChoiceConstraint::accept(int32_t token) {
  if (!allows(token)) throw Error("ChoiceConstraint: token " + std::to_string(token) + " is not allowed");
  for (size_t i = 0; i < options_.size(); ++i)
    if (alive_[i] && !(pos_ < options_[i].size() && options_[i][pos_] == token)) alive_[i] = 0;
  ++pos_;
  for (size_t i = 0; i < options_.size(); ++i)
    if (alive_[i] && options_[i].size() == pos_) {
      done_ = true;
      chosen_ = static_cast<int>(i);
      return;
    }
}

// ---------------------------------------------------------------- JsonConstraint

namespace {
enum class Kind : uint8_t { Any, Object, Array, String, Integer, Number, Literal };
}

struct JsonConstraint::Schema {
  struct Node {
    Kind kind = Kind::Any;
    std::vector<int> prop_keys;    // Object: literal nodes spelling `"key":` (with ',' after the first)
    std::vector<int> prop_values;  // Object: value nodes
    int items = -1;                // Array: item node
    int min_items = 0, max_items = 8;
    int max_len = 64;              // String
    std::vector<std::string> options;  // Literal: the allowed texts
  };
  std::vector<Node> nodes;
  int root = -1;
  int any_literal = -1;  // true / false / null
  int any_node = -1;     // a free-form value
  Limits limits;

  int add(Node n) {
    nodes.push_back(std::move(n));
    return static_cast<int>(nodes.size()) - 1;
  }
  int literal(std::vector<std::string> options) {
    Node n;
    n.kind = Kind::Literal;
    n.options = std::move(options);
    return add(std::move(n));
  }
  int compile(const json_py::Json& s, int depth) {
    using json_py::Json;
    if (depth > kMaxDepth) throw Error("response_format schema is nested too deeply (max " + std::to_string(kMaxDepth) + ")");
    if (s.is_boolean() && s.get<bool>()) return add(Node{});
    if (!s.is_object()) throw Error("response_format schema: a schema must be an object");
    auto dump_compact = [](const Json& v) { return v.dump(); };
    if (s.contains("const")) return literal({dump_compact(s["const"])});
    if (s.contains("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array() || e.empty()) throw Error("response_format schema: enum must be a non-empty array");
      std::vector<std::string> opts;
      for (const Json& v : e) opts.push_back(dump_compact(v));
      if (opts.size() > 64) throw Error("response_format schema: enum has more than 64 values");
      return literal(std::move(opts));
    }
    std::string type;
    if (s.contains("type") && s["type"].is_string()) type = s["type"].get<std::string>();
    if (type.empty() && s.contains("properties")) type = "object";
    Node n;
    if (type == "object") {
      n.kind = Kind::Object;
      if (s.contains("properties")) {
        const Json& props = s["properties"];
        if (!props.is_object()) throw Error("response_format schema: properties must be an object");
        bool first = true;
        for (auto it = props.begin(); it != props.end(); ++it) {
          std::string key;
          json_py::append_quoted(key, it.key());
          n.prop_keys.push_back(literal({(first ? "" : ",") + key + ":"}));
          n.prop_values.push_back(compile(it.value(), depth + 1));
          first = false;
        }
      } else {
        n.kind = Kind::Any;  // an object without properties: any object
        int id = add(std::move(n));
        object_only.push_back(id);
        return id;
      }
    } else if (type == "array") {
      n.kind = Kind::Array;
      n.items = s.contains("items") ? compile(s["items"], depth + 1) : add(Node{});
      n.max_items = limits.max_items;
      if (s.contains("minItems") && s["minItems"].is_number_integer())
        n.min_items = static_cast<int>(std::clamp<int64_t>(s["minItems"].get<int64_t>(), 0, 64));
      if (s.contains("maxItems") && s["maxItems"].is_number_integer())
        n.max_items = static_cast<int>(std::clamp<int64_t>(s["maxItems"].get<int64_t>(), 0, 64));
      if (n.max_items < n.min_items) throw Error("response_format schema: maxItems < minItems");
    } else if (type == "string") {
      n.kind = Kind::String;
      n.max_len = limits.max_string;
      if (s.contains("maxLength") && s["maxLength"].is_number_integer())
        n.max_len = static_cast<int>(std::clamp<int64_t>(s["maxLength"].get<int64_t>(), 0, 4096));
    } else if (type == "integer") {
      n.kind = Kind::Integer;
    } else if (type == "number") {
      n.kind = Kind::Number;
    } else if (type == "boolean") {
      return literal({"true", "false"});
    } else if (type == "null") {
      return literal({"null"});
    } else {
      n.kind = Kind::Any;
    }
    return add(std::move(n));
  }
  std::vector<int> object_only;  // Any nodes that must be objects
  bool is_object_only(int node) const {
    for (int i : object_only)
      if (i == node) return true;
    return false;
  }
};

namespace {
enum class F : uint8_t { Value, Lit, Str, Num, Obj, AnyObj, Arr };

struct Frame {
  F type = F::Value;
  uint8_t phase = 0;
  int16_t node = -1;
  int16_t depth = 0;
  int16_t count = 0;  // Obj: property index; AnyObj: members; Arr: items; Str: bytes; Num: digits
  int32_t pos = 0;    // Lit: bytes matched
  uint64_t alive = 0; // Lit: candidate options
};
}  // namespace

struct JsonConstraint::State {
  static constexpr int kStack = 2 * kMaxDepth + 4;
  Frame st[kStack];
  int n = 0;
  bool started = false;
};
static_assert(std::is_trivially_copyable_v<JsonConstraint::State>);

namespace {

using Schema = JsonConstraint::Schema;
using State = JsonConstraint::State;

bool push(State& s, Frame f) {
  if (s.n >= State::kStack) return false;
  s.st[s.n++] = f;
  return true;
}

bool num_terminal(const Frame& f) { return f.phase == 2 || f.phase == 3 || f.phase == 5 || f.phase == 8; }

// A child frame finished: pop it and advance the parent.
bool child_done(const Schema& sc, State& s) {
  --s.n;
  if (s.n == 0) return true;
  Frame& p = s.st[s.n - 1];
  switch (p.type) {
    case F::Obj: {
      const auto& node = sc.nodes[static_cast<size_t>(p.node)];
      if (p.phase == 0) {  // key literal done: now the value
        p.phase = 1;
        Frame v;
        v.type = F::Value;
        v.node = static_cast<int16_t>(node.prop_values[static_cast<size_t>(p.count)]);
        v.depth = static_cast<int16_t>(p.depth + 1);
        return push(s, v);
      }
      p.phase = 0;
      ++p.count;
      return true;
    }
    case F::AnyObj:
      if (p.phase == 1) p.phase = 2;        // key done: expect ':'
      else if (p.phase == 3) { p.phase = 4; ++p.count; }  // value done: ',' or '}'
      return true;
    case F::Arr:
      ++p.count;
      p.phase = 1;
      return true;
    default:
      return false;
  }
}

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

bool feed(const Schema& sc, State& s, unsigned char c) {
  for (int guard = 0; guard < 2 * State::kStack + 4; ++guard) {
    if (s.n == 0) return false;
    Frame& f = s.st[s.n - 1];
    switch (f.type) {
      case F::Value: {
        const auto& node = sc.nodes[static_cast<size_t>(f.node)];
        const bool any = node.kind == Kind::Any;
        const bool may_nest = !any || f.depth < sc.limits.max_any_depth;
        const bool obj_only = any && sc.is_object_only(f.node);
        if (obj_only && c != '{') return false;
        if ((node.kind == Kind::Object || (any && may_nest)) && c == '{') {
          f.type = any ? F::AnyObj : F::Obj;
          f.phase = 0;
          f.count = 0;
          if (!any && node.prop_keys.empty()) f.phase = 2;  // only '}' remains
          return true;
        }
        if ((node.kind == Kind::Array || (any && may_nest)) && c == '[') {
          f.type = F::Arr;
          f.phase = 0;
          f.count = 0;
          return true;
        }
        if ((node.kind == Kind::String || any) && c == '"') {
          f.type = F::Str;
          f.phase = 0;
          f.count = 0;
          f.pos = 0;
          return true;
        }
        if ((node.kind == Kind::Integer || node.kind == Kind::Number || any) && (c == '-' || is_digit(c))) {
          f.type = F::Num;
          f.phase = 0;
          f.count = 0;
          f.pos = 0;
          continue;
        }
        if (node.kind == Kind::Literal || (any && (c == 't' || c == 'f' || c == 'n'))) {
          if (any) f.node = static_cast<int16_t>(sc.any_literal);
          const auto& lit = sc.nodes[static_cast<size_t>(f.node)];
          f.type = F::Lit;
          f.pos = 0;
          f.alive = lit.options.size() >= 64 ? ~0ull : ((1ull << lit.options.size()) - 1);
          continue;
        }
        return false;
      }
      case F::Lit: {
        const auto& opts = sc.nodes[static_cast<size_t>(f.node)].options;
        uint64_t alive = 0;
        bool complete = false, longer = false;
        for (size_t i = 0; i < opts.size(); ++i) {
          if (!(f.alive >> i & 1)) continue;
          const std::string& o = opts[i];
          if (static_cast<size_t>(f.pos) < o.size() && static_cast<unsigned char>(o[static_cast<size_t>(f.pos)]) == c) {
            alive |= 1ull << i;
            if (o.size() == static_cast<size_t>(f.pos) + 1) complete = true;
            else longer = true;
          }
        }
        if (!alive) return false;
        f.alive = alive;
        ++f.pos;
        // An option that is a prefix of another (enum 1 and 10) can only win when the longer
        // one is gone; keeping the longer one is the simple, safe choice.
        if (complete && !longer) return child_done(sc, s);
        return true;
      }
      case F::Str: {
        const auto& node = sc.nodes[static_cast<size_t>(f.node)];
        const int max_len = node.kind == Kind::String ? node.max_len : sc.limits.max_string;
        if (f.phase == 1) {
          if (!std::strchr("\"\\/bfnrt", c) || c == 0) return false;
          f.phase = 0;
          ++f.count;
          return true;
        }
        // pos: the UTF-8 state of the string's bytes (a character is started only when all of
        // its bytes fit in max_len, so every prefix stays completable).
        uint32_t u = static_cast<uint32_t>(f.pos);
        if (u != 0 || c >= 0x80) {
          if (!utf8_step(u, c)) return false;
          if (f.count + 1 + utf8_pending(u) > max_len) return false;
          f.pos = static_cast<int32_t>(u);
          ++f.count;
          return true;
        }
        if (c == '"') return child_done(sc, s);
        if (c < 0x20 || f.count >= max_len) return false;
        if (c == '\\') {
          if (f.count + 1 >= max_len) return false;
          f.phase = 1;
          ++f.count;
          return true;
        }
        ++f.count;
        return true;
      }
      case F::Num: {
        const bool integer = sc.nodes[static_cast<size_t>(f.node)].kind == Kind::Integer;
        // phases: 0 start, 1 after '-', 2 after leading 0, 3 int digits, 4 after '.', 5 frac
        // digits, 6 after e, 7 after e sign, 8 exp digits. At most 16 mantissa digits (count)
        // and 3 exponent digits (pos); a '.' is only allowed while a digit can still follow,
        // so every prefix stays completable.
        bool ok = false;
        const bool room = f.count < 16;
        switch (f.phase) {
          case 0:
            if (c == '-') { f.phase = 1; ok = true; }
            else if (c == '0') { f.phase = 2; ok = true; ++f.count; }
            else if (is_digit(c)) { f.phase = 3; ok = true; ++f.count; }
            break;
          case 1:
            if (c == '0') { f.phase = 2; ok = true; ++f.count; }
            else if (is_digit(c)) { f.phase = 3; ok = true; ++f.count; }
            break;
          case 2:
          case 3:
            if (f.phase == 3 && is_digit(c) && room) { ok = true; ++f.count; }
            else if (!integer && c == '.' && room) { f.phase = 4; ok = true; }
            else if (!integer && (c == 'e' || c == 'E')) { f.phase = 6; ok = true; }
            break;
          case 4:
          case 5:
            if (is_digit(c) && room) { f.phase = 5; ok = true; ++f.count; }
            else if (f.phase == 5 && (c == 'e' || c == 'E')) { f.phase = 6; ok = true; }
            break;
          case 6:
            if (c == '+' || c == '-') { f.phase = 7; ok = true; }
            else if (is_digit(c)) { f.phase = 8; ok = true; f.pos = 1; }
            break;
          case 7:
          case 8:
            if (is_digit(c) && f.pos < 3) { f.phase = 8; ok = true; ++f.pos; }
            break;
        }
        if (ok) return true;
        if (!num_terminal(f)) return false;
        if (!child_done(sc, s)) return false;
        continue;  // the byte belongs to the parent
      }
      case F::Obj: {
        const auto& node = sc.nodes[static_cast<size_t>(f.node)];
        if (f.phase == 0 && static_cast<size_t>(f.count) < node.prop_keys.size()) {
          Frame k;
          k.type = F::Value;
          k.node = static_cast<int16_t>(node.prop_keys[static_cast<size_t>(f.count)]);
          k.depth = f.depth;
          if (!push(s, k)) return false;
          continue;
        }
        if (c == '}') return child_done(sc, s);
        return false;
      }
      case F::AnyObj: {
        switch (f.phase) {
          case 0:  // after '{'
          case 5:  // after ','
            if (c == '}' && f.phase == 0) return child_done(sc, s);
            if (c == '"') {
              f.phase = 1;
              Frame k;
              k.type = F::Str;
              k.node = f.node;
              k.depth = f.depth;
              return push(s, k);
            }
            return false;
          case 2:
            if (c != ':') return false;
            {
              f.phase = 3;
              Frame v;
              v.type = F::Value;
              v.node = static_cast<int16_t>(sc.any_node);
              v.depth = static_cast<int16_t>(f.depth + 1);
              return push(s, v);
            }
          case 4:
            if (c == '}') return child_done(sc, s);
            if (c == ',' && f.count < sc.limits.max_members) {
              f.phase = 5;
              return true;
            }
            return false;
          default:
            return false;
        }
      }
      case F::Arr: {
        const auto& node = sc.nodes[static_cast<size_t>(f.node)];
        const bool any = node.kind == Kind::Any;
        const int min_items = any ? 0 : node.min_items;
        const int max_items = any ? sc.limits.max_items : node.max_items;
        const int item = any ? sc.any_node : node.items;
        if (c == ']' && f.count >= min_items && (f.phase == 0 || f.phase == 1)) return child_done(sc, s);
        Frame v;
        v.type = F::Value;
        v.node = static_cast<int16_t>(item);
        v.depth = static_cast<int16_t>(f.depth + 1);
        if (f.phase == 0) {
          if (max_items == 0) return false;
          f.phase = 2;  // inside an item
          if (!push(s, v)) return false;
          continue;
        }
        if (f.phase == 1 && c == ',' && f.count < max_items) {
          f.phase = 2;
          return push(s, v);
        }
        return false;
      }
    }
  }
  return false;
}

bool can_end(const State& s) {
  if (!s.started) return false;
  if (s.n == 0) return true;
  return s.n == 1 && s.st[0].type == F::Num && num_terminal(s.st[0]);
}

}  // namespace

JsonConstraint::JsonConstraint(std::shared_ptr<const TokenTable> table, const json_py::Json& schema, Limits limits)
    : table_(std::move(table)), schema_(std::make_unique<Schema>()), state_(std::make_unique<State>()) {
  schema_->limits = limits;
  schema_->any_literal = schema_->literal({"true", "false", "null"});
  schema_->any_node = schema_->add(Schema::Node{});
  if (schema.is_null()) {
    schema_->root = schema_->add(Schema::Node{});
    schema_->object_only.push_back(schema_->root);
  } else {
    schema_->root = schema_->compile(schema, 0);
  }
  if (schema_->nodes.size() > 30000) throw Error("response_format schema is too large");
  Frame f;
  f.type = F::Value;
  f.node = static_cast<int16_t>(schema_->root);
  push(*state_, f);
}

JsonConstraint::~JsonConstraint() = default;

bool JsonConstraint::allows(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= table_->bytes.size()) return false;
  if (token == table_->eos) return can_end(*state_);
  if (table_->special[static_cast<size_t>(token)]) return false;
  const std::string& b = table_->bytes[static_cast<size_t>(token)];
  if (b.empty()) return false;
  State s = *state_;
  s.started = true;
  for (char ch : b)
    if (!feed(*schema_, s, static_cast<unsigned char>(ch))) return false;
  return true;
}

void JsonConstraint::accept(int32_t token) {
  if (!allows(token)) throw Error("JsonConstraint: token " + std::to_string(token) + " is not allowed");
  if (token == table_->eos) {
    state_->n = 0;
    return;
  }
  state_->started = true;
  for (char ch : table_->bytes[static_cast<size_t>(token)]) feed(*schema_, *state_, static_cast<unsigned char>(ch));
}

bool JsonConstraint::done() const { return can_end(*state_); }

bool JsonConstraint::accepts_text(std::string_view text) const {
  State s = *state_;
  s.started = true;
  for (char ch : text)
    if (!feed(*schema_, s, static_cast<unsigned char>(ch))) return false;
  return can_end(s);
}

}  // namespace dsv4

#include "text/output_parser.h"

#include <algorithm>
#include <optional>

namespace dsv4::chat {

namespace {

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

const std::string kToolCallsStart = cat({"\n\n<", kDsml, "tool_calls"});  // reference's tool-block start
const std::string kToolCallsEnd = cat({"</", kDsml, "tool_calls>"});
const std::string kInvokeOpen = cat({"<", kDsml, "invoke"});
const std::string kInvokeClose = cat({"</", kDsml, "invoke"});
const std::string kParamOpen = cat({"<", kDsml, "parameter"});
const std::string kParamCloseRef = cat({"/", kDsml, "parameter"});  // the reference stops here (no '<')

// ---------------------------------------------------------------- strict (reference port)

struct ReadResult {
  size_t index;
  std::string_view content;
  std::optional<std::string_view> stop;
};

// _read_until_stop: the earliest stop wins; on a tie the first listed one.
ReadResult read_until_stop(size_t index, std::string_view text, std::initializer_list<std::string_view> stops) {
  size_t min_pos = text.size();
  std::optional<std::string_view> matched;
  for (auto s : stops) {
    size_t pos = text.find(s, std::min(index, text.size()));
    if (pos != std::string_view::npos && pos < min_pos) {
      min_pos = pos;
      matched = s;
    }
  }
  if (matched) return {min_pos + matched->size(), text.substr(index, min_pos - index), matched};
  return {text.size(), text.substr(std::min(index, text.size())), std::nullopt};
}

[[noreturn]] void fail(const char* kind, const std::string& msg) { throw OutputParseError(kind, msg); }

// Length of a Python `\s` character (str pattern: Unicode whitespace) at s[i], or 0.
size_t py_space_len(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  static const std::string_view kWide[] = {
      "\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80"};
  for (auto w : kWide)
    if (s.substr(i, w.size()) == w) return w.size();
  // U+2000..U+200A: E2 80 80..8A
  if (i + 2 < s.size() && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
      static_cast<unsigned char>(s[i + 2]) <= 0x8A && static_cast<unsigned char>(s[i + 2]) >= 0x80)
    return 3;
  return 0;
}

// re.findall(r'^\s*name="(.*?)">\n$', s, DOTALL) == exactly one match. Python's `$` also
// matches before a final "\n", so the content may end in ">\n" or ">\n\n" (zero-param invokes).
std::optional<std::string> match_tool_name(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = py_space_len(s, i);
    if (!n) break;
    i += n;
  }
  // `\s*` is greedy but may backtrack; "name=" starts with a non-space, so no backtracking helps.
  if (s.substr(i, 6) != "name=\"") return std::nullopt;
  std::string_view r = s.substr(i + 6);
  if (r.size() >= 4 && r.substr(r.size() - 4) == "\">\n\n") return std::string(r.substr(0, r.size() - 4));
  if (r.size() >= 3 && r.substr(r.size() - 3) == "\">\n") return std::string(r.substr(0, r.size() - 3));
  return std::nullopt;
}

struct ParamMatch {
  std::string name, string_attr, value;
};

// re.findall(r'^ name="(.*?)" string="(true|false)">(.*?)<$', s, DOTALL): the lazy name ends
// at the first `" string="true">` / `" string="false">`; the value runs to a final "<"
// (or "<\n", because of `$`).
std::optional<ParamMatch> match_param(std::string_view s) {
  if (s.substr(0, 7) != " name=\"") return std::nullopt;
  std::string_view r = s.substr(7);
  std::string_view tail;
  if (r.size() >= 1 && r.back() == '<') tail = r.substr(0, r.size() - 1);
  else if (r.size() >= 2 && r.substr(r.size() - 2) == "<\n") tail = r.substr(0, r.size() - 2);
  else return std::nullopt;
  static constexpr std::string_view kT = "\" string=\"true\">", kF = "\" string=\"false\">";
  for (size_t k = 0; k < r.size(); ++k) {
    for (auto attr : {kT, kF}) {
      if (r.substr(k, attr.size()) != attr) continue;
      size_t vstart = k + attr.size();
      if (vstart > tail.size()) continue;  // the attribute would overlap the final '<'
      return ParamMatch{std::string(r.substr(0, k)), attr == kT ? "true" : "false",
                        std::string(tail.substr(vstart))};
    }
  }
  return std::nullopt;
}

std::string build_arguments(const std::vector<ParamMatch>& params) {
  std::string out = "{";
  for (size_t i = 0; i < params.size(); ++i) {
    if (i) out += ", ";
    json_py::append_quoted(out, params[i].name);
    out += ": ";
    if (params[i].string_attr == "true") json_py::append_quoted(out, params[i].value);
    else out += params[i].value;  // pasted verbatim, as the reference does
  }
  out += '}';
  return out;
}

std::string py_repr_hint(std::string_view s) { return std::string(s); }

size_t parse_tool_calls_strict(size_t index, std::string_view text, std::vector<ParsedToolCall>& calls) {
  while (index < text.size()) {
    auto r = read_until_stop(index, text, {kInvokeOpen, kToolCallsEnd});
    index = r.index;
    if (r.content != ">\n")
      fail("ValueError", "Tool call format error: expected '>\\n' but got '" + py_repr_hint(r.content) + "'");
    if (r.stop && *r.stop == kToolCallsEnd) break;
    if (!r.stop) fail("ValueError", "Missing special token in tool calls");

    auto n = read_until_stop(index, text, {kParamOpen, kInvokeClose});
    index = n.index;
    auto name = match_tool_name(n.content);
    if (!name) fail("ValueError", "Tool name format error: '" + std::string(n.content) + "'");
    std::vector<ParamMatch> params;
    auto stop = n.stop;
    while (stop && *stop == kParamOpen) {
      auto p = read_until_stop(index, text, {kParamCloseRef});
      index = p.index;
      auto m = match_param(p.content);
      if (!m) fail("ValueError", "Parameter format error: '" + std::string(p.content) + "'");
      for (const auto& q : params)
        if (q.name == m->name) fail("ValueError", "Duplicate parameter name: '" + m->name + "'");
      params.push_back(std::move(*m));
      auto a = read_until_stop(index, text, {kParamOpen, kInvokeClose});
      index = a.index;
      stop = a.stop;
      if (a.content != ">\n")
        fail("ValueError", "Parameter format error: expected '>\\n' but got '" + std::string(a.content) + "'");
    }
    calls.push_back({*name, build_arguments(params)});
  }
  return index;
}

// ---------------------------------------------------------------- streaming helpers

// Longest k < marker.size() such that buf ends with marker[0:k].
size_t partial_overlap(std::string_view buf, std::string_view marker) {
  size_t max_k = std::min(buf.size(), marker.size() - 1);
  for (size_t k = max_k; k > 0; --k)
    if (buf.substr(buf.size() - k) == marker.substr(0, k)) return k;
  return 0;
}

bool is_proper_prefix(std::string_view buf, std::string_view marker) {
  return buf.size() < marker.size() && marker.substr(0, buf.size()) == buf;
}

const std::string kBlockOpenTool = cat({"<", kDsml, "tool_calls"});
const std::string kBlockOpenFunc = cat({"<", kDsml, "function_calls"});  // V3.2 wrapper
const std::string kBlockCloseTool = cat({"</", kDsml, "tool_calls"});
const std::string kBlockCloseFunc = cat({"</", kDsml, "function_calls"});
const std::string kParamClose = cat({"</", kDsml, "parameter"});

struct Found {
  size_t pos = std::string_view::npos;
  std::string_view marker;
};

Found find_first(std::string_view buf, std::initializer_list<std::string_view> markers) {
  Found f;
  for (auto m : markers) {
    size_t p = buf.find(m);
    if (p != std::string_view::npos && p < f.pos) f = {p, m};
  }
  return f;
}

size_t hold_back(std::string_view buf, std::initializer_list<std::string_view> markers) {
  size_t h = 0;
  for (auto m : markers) h = std::max(h, partial_overlap(buf, m));
  return h;
}

// Markers that end reasoning / content text. The "\n"-prefixed forms exist so that up to
// two newlines before a tool block are held back (they are dropped if the block follows).
const std::string kNlTool1 = "\n" + kBlockOpenTool, kNlTool2 = "\n\n" + kBlockOpenTool;
const std::string kNlFunc1 = "\n" + kBlockOpenFunc, kNlFunc2 = "\n\n" + kBlockOpenFunc;

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Length of the longest prefix of s made of complete UTF-8 sequences, treating
// structurally broken bytes as complete (they are passed through, not held forever).
size_t complete_utf8_prefix(std::string_view s) {
  size_t n = s.size();
  // Look back at most 3 bytes for the start of an incomplete sequence.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------- public: strict

ParsedMessage parse_completion_strict(std::string_view text, ThinkingMode mode) {
  ParsedMessage m;
  size_t index = 0;
  if (mode == ThinkingMode::Thinking) {
    auto r = read_until_stop(index, text, {kThinkEnd, kToolCallsStart});
    index = r.index;
    m.reasoning_content = std::string(r.content);
    if (!(r.stop && *r.stop == kThinkEnd)) fail("AssertionError", "Invalid thinking format: missing </think>");
    m.saw_think_end = true;
  }
  auto r = read_until_stop(index, text, {kEos, kToolCallsStart});
  index = r.index;
  m.content = std::string(r.content);
  auto stop = r.stop;
  bool tool_calling = stop && *stop == kToolCallsStart;
  if (!tool_calling && !(stop && *stop == kEos)) fail("AssertionError", "Invalid format: missing EOS token");
  if (tool_calling) {
    index = parse_tool_calls_strict(index, text, m.tool_calls);
    auto e = read_until_stop(index, text, {kEos});
    index = e.index;
    stop = e.stop;
    if (!e.content.empty()) fail("AssertionError", "Unexpected content after tool calls");
  }
  if (index != text.size()) fail("AssertionError", "Unexpected content at end");
  for (auto sp : {kBos, kEos, kThinkStart, kThinkEnd, kDsml}) {
    if (m.content.find(sp) != std::string::npos || m.reasoning_content.find(sp) != std::string::npos)
      fail("AssertionError", "Unexpected special token '" + std::string(sp) + "' in content");
  }
  m.saw_eos = stop && *stop == kEos;
  return m;
}

ParsedMessage parse_completion_lenient(std::string_view text, ThinkingMode mode) {
  StreamingParser p(mode);
  p.feed(text);
  p.finish();
  return p.message();
}

Json message_to_json(const ParsedMessage& m) {
  Json calls = Json::array();
  for (const auto& c : m.tool_calls)
    calls.push_back(Json::object(
        {{"type", "function"}, {"function", Json::object({{"name", c.name}, {"arguments", c.arguments}})}}));
  return Json::object({{"role", "assistant"},
                       {"content", m.content},
                       {"reasoning_content", m.reasoning_content},
                       {"tool_calls", std::move(calls)}});
}

// ---------------------------------------------------------------- public: streaming

StreamingParser::StreamingParser(ThinkingMode mode)
    : mode_(mode), state_(mode == ThinkingMode::Thinking ? State::Reasoning : State::Content) {}

std::vector<StreamDelta> StreamingParser::feed(std::string_view text) {
  std::vector<StreamDelta> out;
  if (finished_) return out;
  pending_utf8_.append(text);
  size_t n = complete_utf8_prefix(pending_utf8_);
  buf_.append(pending_utf8_, 0, n);
  pending_utf8_.erase(0, n);
  process(false, out);
  return out;
}

std::vector<StreamDelta> StreamingParser::finish() {
  std::vector<StreamDelta> out;
  if (!finished_) {
    buf_ += pending_utf8_;
    pending_utf8_.clear();
    process(true, out);
    // Close whatever is still open so the message is well formed.
    switch (state_) {
      case State::ParamString:
        if (!skip_param_) emit_args("\"", out);
        msg_.truncated_tool_call = true;
        close_invoke(out);
        break;
      case State::ParamRaw:
        msg_.truncated_tool_call = true;  // a non-string value cut off is dropped
        close_invoke(out);
        break;
      case State::InvokeBody:
      case State::InvokeJson:
        msg_.truncated_tool_call = true;
        close_invoke(out);
        break;
      default:
        break;
    }
    finished_ = true;
  }
  if (!done_emitted_) {
    done_emitted_ = true;
    out.push_back({StreamDelta::Kind::Done, {}, -1});
  }
  return out;
}

void StreamingParser::emit_text(StreamDelta::Kind kind, std::string_view text, std::vector<StreamDelta>& out) {
  if (text.empty()) return;
  (kind == StreamDelta::Kind::Reasoning ? msg_.reasoning_content : msg_.content).append(text);
  if (!out.empty() && out.back().kind == kind) out.back().text.append(text);
  else out.push_back({kind, std::string(text), -1});
}

void StreamingParser::emit_args(std::string_view frag, std::vector<StreamDelta>& out) {
  if (frag.empty()) return;
  int idx = static_cast<int>(msg_.tool_calls.size()) - 1;
  msg_.tool_calls.back().arguments.append(frag);
  if (!out.empty() && out.back().kind == StreamDelta::Kind::ToolCallArguments && out.back().tool_index == idx)
    out.back().text.append(frag);
  else out.push_back({StreamDelta::Kind::ToolCallArguments, std::string(frag), idx});
}

void StreamingParser::close_invoke(std::vector<StreamDelta>& out) {
  if (!json_body_) emit_args(n_params_ == 0 ? "{}" : "}", out);
  json_body_ = false;
  state_ = State::Tools;
}

void StreamingParser::on_eos() {
  msg_.saw_eos = true;
  finished_ = true;
  state_ = State::Eos;
  buf_.clear();
}

void StreamingParser::finish_raw_param(std::vector<StreamDelta>& out) {
  if (!skip_param_) {
    std::string frag = n_params_ == 0 ? "{" : ", ";
    json_py::append_quoted(frag, param_name_);
    frag += ": ";
    bool valid = true;
    try {
      json_py::loads(raw_value_);
    } catch (const Error&) {
      valid = false;
    }
    if (valid) frag += raw_value_;
    else json_py::append_quoted(frag, raw_value_);
    emit_args(frag, out);
    ++n_params_;
  }
  raw_value_.clear();
  state_ = State::InvokeBody;
}

void StreamingParser::process(bool final, std::vector<StreamDelta>& out) {
  while (!finished_ && step(final, out)) {
  }
  if (final && state_ != State::Eos) buf_.clear();  // whatever is left could not be used
  if (state_ == State::Eos && !done_emitted_) {
    // EOS ends the message right away; the caller need not wait for finish().
    done_emitted_ = true;
    out.push_back({StreamDelta::Kind::Done, {}, -1});
  }
}

// One state-machine step. Returns false when it needs more input (or, when final, when the
// buffer is exhausted). Every decision waits until the buffered text settles it, so the
// result does not depend on how the input was split.
bool StreamingParser::step(bool final, std::vector<StreamDelta>& out) {
  std::string_view b = buf_;
  auto consume = [&](size_t n) { buf_.erase(0, n); };
  // Noise inside a tool block is dropped up to the next '<'. The state persists across
  // feeds, so the cut does not depend on where the input was split.
  auto start_garbage = [&]() {
    consume(1);
    in_garbage_ = true;
  };
  auto drop_garbage = [&]() {
    if (!in_garbage_) return false;
    size_t lt = buf_.find('<');
    if (lt == std::string::npos) {
      buf_.clear();
      return true;
    }
    consume(lt);
    in_garbage_ = false;
    return false;
  };
  auto skip_ws = [&]() {
    size_t k = 0;
    while (k < buf_.size() && is_json_space(buf_[k])) ++k;
    consume(k);
    return !buf_.empty();
  };

  switch (state_) {
    case State::Reasoning:
    case State::Content: {
      const bool reasoning = state_ == State::Reasoning;
      const auto kind = reasoning ? StreamDelta::Kind::Reasoning : StreamDelta::Kind::Content;
      if (b.empty()) return false;
      if (at_start_) {
        // A repeated opener at the very start: "<think>" in reasoning, "</think>" in chat content.
        std::string_view opener = reasoning ? kThinkStart : (mode_ == ThinkingMode::Chat ? kThinkEnd : std::string_view());
        if (!opener.empty()) {
          if (!final && is_proper_prefix(b, opener)) return false;
          if (b.substr(0, opener.size()) == opener) consume(opener.size());
        }
        at_start_ = false;
        return true;
      }
      Found f = reasoning ? find_first(b, {kThinkEnd, kEos, kBlockOpenTool, kBlockOpenFunc})
                          : find_first(b, {kEos, kBlockOpenTool, kBlockOpenFunc});
      if (f.pos != std::string_view::npos) {
        size_t text_end = f.pos;
        bool block = f.marker == kBlockOpenTool || f.marker == kBlockOpenFunc;
        if (block)
          for (int k = 0; k < 2 && text_end > 0 && b[text_end - 1] == '\n'; ++k) --text_end;
        emit_text(kind, b.substr(0, text_end), out);
        size_t marker_len = f.marker.size();
        consume(f.pos + marker_len);
        if (f.marker == kThinkEnd) {
          msg_.saw_think_end = true;
          state_ = State::Content;
          at_start_ = false;
        } else if (f.marker == kEos) {
          on_eos();
        } else {
          state_ = State::ToolsOpen;
        }
        return true;
      }
      size_t h = final ? 0
                       : (reasoning ? hold_back(b, {kThinkEnd, kEos, kNlTool2, kNlTool1, kBlockOpenTool, kNlFunc2,
                                                    kNlFunc1, kBlockOpenFunc})
                                    : hold_back(b, {kEos, kNlTool2, kNlTool1, kBlockOpenTool, kNlFunc2, kNlFunc1,
                                                    kBlockOpenFunc}));
      if (h == b.size()) return false;
      emit_text(kind, b.substr(0, b.size() - h), out);
      consume(b.size() - h);
      return false;
    }

    case State::ToolsOpen:
      if (b.empty()) return false;
      if (b[0] == '>') consume(1);
      state_ = State::Tools;
      return true;

    case State::Tools:
    case State::AfterTools: {
      if (drop_garbage()) return false;
      if (!skip_ws()) return false;
      b = buf_;
      if (b.substr(0, kEos.size()) == kEos) {
        on_eos();
        return true;
      }
      if (state_ == State::Tools) {
        if (b.substr(0, kInvokeOpen.size()) == kInvokeOpen) {
          size_t gt = b.find('>', kInvokeOpen.size());
          size_t name_at = b.find("name=\"", kInvokeOpen.size());
          // The header ends at `">` after name=" when there is one, else at the first '>'.
          size_t end = gt;
          if (name_at != std::string_view::npos && (gt == std::string_view::npos || name_at < gt)) {
            size_t q = b.find("\">", name_at + 6);
            end = q == std::string_view::npos ? q : q + 1;
          }
          if (end == std::string_view::npos) {
            if (!final) return false;
            consume(b.size());  // header never completed: the call is dropped
            return false;
          }
          std::string name;
          if (name_at != std::string_view::npos && name_at < end) name = std::string(b.substr(name_at + 6, end - 1 - (name_at + 6)));
          consume(end + 1);
          msg_.tool_calls.push_back({name, ""});
          out.push_back({StreamDelta::Kind::ToolCallStart, name, static_cast<int>(msg_.tool_calls.size()) - 1});
          n_params_ = 0;
          json_body_ = false;
          param_names_.clear();
          state_ = State::InvokeBody;
          return true;
        }
        for (const std::string* close : {&kBlockCloseTool, &kBlockCloseFunc}) {
          if (b.substr(0, close->size()) == *close) {
            if (b.size() == close->size() && !final) return false;  // is a '>' next?
            consume(close->size() + (b.size() > close->size() && b[close->size()] == '>' ? 1 : 0));
            state_ = State::AfterTools;
            return true;
          }
        }
        if (!final && (is_proper_prefix(b, kInvokeOpen) || is_proper_prefix(b, kBlockCloseTool) ||
                       is_proper_prefix(b, kBlockCloseFunc) || is_proper_prefix(b, kEos)))
          return false;
        // Not a tag: drop text up to the next '<' (model noise inside the block).
        start_garbage();
        return true;
      }
      // AfterTools: another block, or text that continues the content.
      for (const std::string* open : {&kBlockOpenTool, &kBlockOpenFunc}) {
        if (b.substr(0, open->size()) == *open) {
          consume(open->size());
          state_ = State::ToolsOpen;
          return true;
        }
      }
      if (!final && (is_proper_prefix(b, kBlockOpenTool) || is_proper_prefix(b, kBlockOpenFunc) ||
                     is_proper_prefix(b, kEos)))
        return false;
      state_ = State::Content;
      at_start_ = false;
      return true;
    }

    case State::InvokeBody: {
      if (drop_garbage()) return false;
      if (!skip_ws()) return false;
      b = buf_;
      if (b.substr(0, kParamOpen.size()) == kParamOpen) {
        // The header ends at the first '>' (after name=" when present). When that '>' closes a
        // quote, the name runs up to the LAST `" string="` inside, as the reference's lazy
        // regex does when the name itself contains a quote; otherwise the name ends at its
        // first quote and string="..." is looked up anywhere in the header.
        size_t name_at = b.find("name=\"", kParamOpen.size());
        size_t first_gt = b.find('>', kParamOpen.size());
        if (name_at != std::string_view::npos && first_gt != std::string_view::npos && first_gt < name_at)
          name_at = std::string_view::npos;
        size_t gt = name_at == std::string_view::npos ? first_gt : b.find('>', name_at + 6);
        if (gt == std::string_view::npos) {
          if (!final) return false;
          consume(b.size());
          return false;
        }
        std::string_view attrs = b.substr(0, gt);
        std::string sattr;
        param_name_.clear();
        bool attr_found = false;
        if (name_at != std::string_view::npos) {
          std::string_view inner = b.substr(name_at + 6, gt - (name_at + 6));
          if (!inner.empty() && inner.back() == '"') {
            inner.remove_suffix(1);
            size_t s_at = inner.rfind("\" string=\"");
            if (s_at != std::string_view::npos) {
              param_name_ = std::string(inner.substr(0, s_at));
              sattr = std::string(inner.substr(s_at + 10));
              attr_found = true;
            }
          }
          if (!attr_found) param_name_ = std::string(inner.substr(0, inner.find('"')));
        }
        if (!attr_found) {
          size_t s_at = attrs.find("string=\"");
          if (s_at != std::string_view::npos) {
            size_t s_end = attrs.find('"', s_at + 8);
            if (s_end != std::string_view::npos) sattr = std::string(attrs.substr(s_at + 8, s_end - s_at - 8));
          }
        }
        std::transform(sattr.begin(), sattr.end(), sattr.begin(), [](unsigned char c) { return std::tolower(c); });
        consume(gt + 1);
        skip_param_ = std::find(param_names_.begin(), param_names_.end(), param_name_) != param_names_.end();
        if (!skip_param_) param_names_.push_back(param_name_);
        if (sattr == "true") {
          param_kind_ = ParamKind::String;
          if (!skip_param_) {
            std::string frag = n_params_ == 0 ? "{" : ", ";
            json_py::append_quoted(frag, param_name_);
            frag += ": \"";
            emit_args(frag, out);
            ++n_params_;
          }
          state_ = State::ParamString;
        } else {
          param_kind_ = ParamKind::Raw;  // "false" or missing/unknown: decided by JSON validity
          raw_value_.clear();
          state_ = State::ParamRaw;
        }
        return true;
      }
      if (b.substr(0, kInvokeClose.size()) == kInvokeClose) {
        if (b.size() == kInvokeClose.size() && !final) return false;
        consume(kInvokeClose.size() + (b.size() > kInvokeClose.size() && b[kInvokeClose.size()] == '>' ? 1 : 0));
        close_invoke(out);
        return true;
      }
      if (b.substr(0, kBlockCloseTool.size()) == kBlockCloseTool ||
          b.substr(0, kBlockCloseFunc.size()) == kBlockCloseFunc || b.substr(0, kEos.size()) == kEos) {
        close_invoke(out);  // missing </invoke>: implied
        return true;
      }
      if (n_params_ == 0 && !json_body_ && b[0] == '{') {
        json_body_ = true;
        state_ = State::InvokeJson;
        return true;
      }
      if (!final && (is_proper_prefix(b, kParamOpen) || is_proper_prefix(b, kInvokeClose) ||
                     is_proper_prefix(b, kBlockCloseTool) || is_proper_prefix(b, kBlockCloseFunc) ||
                     is_proper_prefix(b, kEos)))
        return false;
      start_garbage();
      return true;
    }

    case State::InvokeJson: {
      // Direct JSON body (`<invoke name="f">{...}</invoke>`): streamed raw as the arguments up
      // to the next closing tag. Trailing whitespace is held back and dropped at the close.
      Found f = find_first(b, {kInvokeClose, kBlockCloseTool, kBlockCloseFunc, kEos});
      if (f.pos == std::string_view::npos) {
        size_t h = final ? 0 : hold_back(b, {kInvokeClose, kBlockCloseTool, kBlockCloseFunc, kEos});
        size_t end = b.size() - h;
        if (!final)
          while (end > 0 && is_json_space(b[end - 1])) --end;
        emit_args(b.substr(0, end), out);
        consume(end);
        return false;
      }
      size_t end = f.pos;
      while (end > 0 && is_json_space(b[end - 1])) --end;
      emit_args(b.substr(0, end), out);
      consume(f.pos);
      state_ = State::InvokeBody;  // handles the close tag (or the implied close)
      return true;
    }

    case State::ParamString:
    case State::ParamRaw: {
      Found f = find_first(b, {kParamClose, kParamOpen, kInvokeClose, kBlockCloseTool, kBlockCloseFunc, kEos});
      if (f.pos == std::string_view::npos) {
        size_t h = final ? 0 : hold_back(b, {kParamClose, kParamOpen, kInvokeClose, kBlockCloseTool, kBlockCloseFunc, kEos});
        std::string_view safe = b.substr(0, b.size() - h);
        if (state_ == State::ParamString) {
          if (!skip_param_ && !safe.empty()) {
            std::string esc;
            json_py::append_quoted(esc, safe);
            emit_args(std::string_view(esc).substr(1, esc.size() - 2), out);
          }
        } else {
          raw_value_.append(safe);
        }
        consume(safe.size());
        return false;
      }
      std::string_view value = b.substr(0, f.pos);
      if (f.marker == kParamClose) {
        size_t after = f.pos + kParamClose.size();
        if (after == b.size() && !final) {
          // Wait to see whether '>' follows, but first flush the value so far.
          if (state_ == State::ParamString) {
            if (!skip_param_ && !value.empty()) {
              std::string esc;
              json_py::append_quoted(esc, value);
              emit_args(std::string_view(esc).substr(1, esc.size() - 2), out);
            }
          } else {
            raw_value_.append(value);
          }
          consume(f.pos);
          return false;
        }
      }
      if (state_ == State::ParamString) {
        if (!skip_param_) {
          std::string esc;
          json_py::append_quoted(esc, value);
          emit_args(std::string_view(esc).substr(1), out);  // without the opening quote (already sent)
        }
        state_ = State::InvokeBody;
      } else {
        raw_value_.append(value);
        if (f.marker == kEos) {
          // A non-string value cut off by EOS is dropped.
          raw_value_.clear();
          msg_.truncated_tool_call = true;
          state_ = State::InvokeBody;
        } else {
          finish_raw_param(out);
        }
      }
      if (f.marker == kEos) msg_.truncated_tool_call = true;
      consume(f.pos);
      if (f.marker == kParamClose) {
        b = buf_;
        consume(kParamClose.size() + (b.size() > kParamClose.size() && b[kParamClose.size()] == '>' ? 1 : 0));
      }
      return true;
    }

    case State::Eos:
      return false;
  }
  return false;
}

}  // namespace dsv4::chat

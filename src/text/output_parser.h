// DeepSeek-V4 output parser: completion text -> {content, reasoning_content, tool_calls}.
//
// Input is the text the model generated after the prompt (which ended in
// "<｜Assistant｜><think>" in thinking mode or "<｜Assistant｜></think>" in chat mode), decoded
// WITHOUT skipping special tokens: "</think>", "｜DSML｜" and EOS must be present as text.
//
// Three entry points:
//  * parse_completion_strict: the official parse_message_from_completion_text, same
//    success/failure outcome on every input (it only accepts well-formed output).
//  * parse_completion_lenient: what a server should use. Never fails; rules below.
//  * StreamingParser: the lenient parser fed incrementally, emitting typed deltas.
//    parse_completion_lenient(t) == StreamingParser fed t in any split, then finish().
//
// Lenient rules (spec section 3.2; each differs from strict only where strict fails, except
// the last two bullets of "tool blocks"):
//  * No "</think>" in thinking mode: everything up to EOS / end is reasoning, content "".
//  * A tool block ("<｜DSML｜tool_calls" or the V3.2 "<｜DSML｜function_calls") inside the
//    reasoning ends the reasoning there and is parsed as tool calls (as vLLM does).
//  * A repeated "<think>" at the very start of reasoning (thinking mode) or a "</think>" at
//    the very start of content (chat mode) is dropped.
//  * A tool block is recognised anywhere in content; up to two "\n" right before it are
//    removed (strict requires exactly "\n\n").
//  * No EOS (truncation, stop string): accepted; saw_eos tells the caller.
//  * Text after EOS is ignored. Text after a closed tool block is appended to content;
//    further tool blocks add more calls.
//  * Tool blocks: whitespace between tags is free; the closing '>' of closers is optional;
//    a missing </｜DSML｜parameter> or </｜DSML｜invoke> is implied by the next DSML tag;
//    string="true"/"false" is case-insensitive; text that is not a DSML tag between tags
//    is dropped; an invoke body that starts with '{' is taken as the JSON arguments
//    object itself (SGLang tolerates this variant).
//  * string="false" (or a missing string attribute): the value is pasted raw when it is
//    valid JSON (Python json.loads rules), otherwise it is turned into a JSON string, so
//    `arguments` is always valid JSON. (Strict pastes invalid JSON raw.)
//  * Duplicate parameter names: the first occurrence is kept and later ones are dropped,
//    so the arguments object has unique keys. (Strict fails.)
//  * Output cut inside a tool call: a call whose header (name) was complete is kept; a
//    string value cut off is closed; a non-string value cut off is dropped; the arguments
//    are closed so they stay valid JSON; truncated_tool_call is set.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "text/chat_encoder.h"
#include "text/json_py.h"

namespace dsv4::chat {

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

struct ParsedMessage {
  std::string content;
  std::string reasoning_content;
  std::vector<ParsedToolCall> tool_calls;
  // Diagnostics of the lenient / streaming parser (strict success implies saw_eos or a
  // closed tool block, and saw_think_end in thinking mode).
  bool saw_eos = false;              // generation ended with EOS
  bool saw_think_end = false;        // thinking mode: "</think>" was seen
  bool truncated_tool_call = false;  // a tool call was cut off and closed by the parser
};

// {"role": "assistant", "content", "reasoning_content", "tool_calls": [{"type": "function",
// "function": {"name", "arguments"}}]}: the reference's return shape (no call ids).
Json message_to_json(const ParsedMessage& m);

// Failure of the strict parser; kind is the reference's exception (AssertionError or ValueError).
class OutputParseError : public Error {
 public:
  OutputParseError(std::string kind, const std::string& message)
      : Error(kind + ": " + message), kind_(std::move(kind)) {}
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
};

ParsedMessage parse_completion_strict(std::string_view text, ThinkingMode mode);
ParsedMessage parse_completion_lenient(std::string_view text, ThinkingMode mode);

// One typed delta of the streaming parser.
struct StreamDelta {
  enum class Kind {
    Reasoning,          // text: reasoning_content fragment
    Content,            // text: content fragment
    ToolCallStart,      // tool_index, text: the tool name (arguments start empty)
    ToolCallArguments,  // tool_index, text: fragment of the arguments JSON
    Done,               // end of output (EOS or finish()); emitted exactly once
  };
  Kind kind;
  std::string text;
  int tool_index = -1;
};

// Incremental lenient parser. Feed decoded text pieces (special tokens as text) in order;
// pieces may split UTF-8 characters and tags anywhere. Text that could still be the start
// of a tag ("</thi", "\n\n<｜DS") or an incomplete UTF-8 character is held back until it is
// resolved, so emitted deltas never contain partial tags or partial characters.
// After EOS the parser is done and ignores further input. Call finish() when generation
// stops for any other reason (length, stop string) to flush held text.
class StreamingParser {
 public:
  explicit StreamingParser(ThinkingMode mode);

  std::vector<StreamDelta> feed(std::string_view text);
  std::vector<StreamDelta> finish();

  bool done() const { return finished_; }
  // Everything emitted so far, accumulated (complete after finish()).
  const ParsedMessage& message() const { return msg_; }

 private:
  enum class State { Reasoning, Content, ToolsOpen, Tools, InvokeBody, InvokeJson, ParamString, ParamRaw, AfterTools, Eos };
  enum class ParamKind { String, Raw };

  void process(bool final, std::vector<StreamDelta>& out);
  bool step(bool final, std::vector<StreamDelta>& out);
  void emit_text(StreamDelta::Kind kind, std::string_view text, std::vector<StreamDelta>& out);
  void emit_args(std::string_view frag, std::vector<StreamDelta>& out);
  void close_invoke(std::vector<StreamDelta>& out);
  void finish_raw_param(std::vector<StreamDelta>& out);
  void on_eos();

  ThinkingMode mode_;
  State state_;
  std::string pending_utf8_;  // incomplete UTF-8 tail of the last feed
  std::string buf_;           // unprocessed text
  ParsedMessage msg_;
  bool at_start_ = true;  // nothing of reasoning (thinking) / content (chat) decided yet
  bool finished_ = false;
  bool done_emitted_ = false;
  // current invoke
  int n_params_ = 0;
  std::vector<std::string> param_names_;
  std::string param_name_;
  ParamKind param_kind_ = ParamKind::String;
  std::string raw_value_;
  bool skip_param_ = false;
  bool json_body_ = false;
  bool in_garbage_ = false;  // dropping non-tag text inside a tool block up to the next '<'   // the invoke body is a raw JSON object  // duplicate parameter: parsed but not emitted
};

}  // namespace dsv4::chat

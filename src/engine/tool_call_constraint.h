// The answer of a forced tool call (tool_choice required / named): exactly one complete DSML
// tool call to one of the given tools, its parameters following the tool's JSON schema, then
// EOS. So a forced call always parses, names a real tool and carries the required arguments,
// even from a weak or random model (before, only the call's opening was forced and the model
// wrote the rest freely; a call cut off by max_tokens was reported with "{}" arguments).
//
// The text is the chat encoder's canonical rendering of a call (spec 2.2):
//   "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"NAME\">\n"
//   "<｜DSML｜parameter name=\"K\" string=\"true|false\">VALUE</｜DSML｜parameter>" (joined by "\n")
//   "\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" EOS
// The fixed pieces are forced as token sequences (ChoiceConstraint: the tokenization the model
// was trained on; the opening is encoded together with the first parameter's tag or the close,
// as the tokenizer merges across that boundary); values are checked byte by byte. Parameters come in schema order; an
// optional one may be left out, a required one may not, and the call closes only once every
// required parameter is written. A parameter of schema type "string" is written raw
// (string="true"; valid UTF-8 without '<', at most maxLength or max_string bytes; an enum
// restricts it to its values); any other is compact JSON following its schema (JsonConstraint,
// string="false"). One call per answer (OpenAI's "required" allows several; one is what every
// agent loop needs, and it keeps the answer short on a weak model).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/constraint.h"

namespace dsv4 {

struct ToolSchema {
  std::string name;
  json_py::Json parameters;  // JSON schema of the arguments object (null: no parameters)
};

class ToolCallConstraint : public TokenConstraint {
 public:
  // Throws Error for an empty tool list or a tool without a name.
  ToolCallConstraint(std::shared_ptr<const TokenTable> table, const Tokenizer& tok, const std::vector<ToolSchema>& tools,
                     int max_string = 4096);
  ~ToolCallConstraint() override;
  bool allows(int32_t token) const override;
  void accept(int32_t token) override;
  // The call is closed: only EOS is allowed from here on.
  bool done() const override;

  struct Param {
    std::string name;
    json_py::Json schema;
    bool required = false;
    bool is_string = false;               // schema type "string": written raw
    std::vector<std::string> enum_values;  // string enum (empty: any string)
    int max_len = 0;                       // string: at most this many bytes
    std::vector<int32_t> open_first;       // OPENING <P name=K string=S>    (first parameter)
    std::vector<int32_t> open_next;        // </P>\n<P name=K string=S>       (after a value)
  };
  struct Tool {
    std::vector<Param> params;
    std::vector<int32_t> close_first;  // OPENING \n</invoke>\n</tool_calls>  (no parameter)
  };

 private:
  enum class Phase { Opener, StringValue, JsonValue, End };
  // Appends the openers of tool_'s parameters that may come next (from next_ after a value, from
  // the first at the call's opening; up to the first required one) and the close when no
  // required parameter is left, recording each option's tool and parameter.
  void add_options(bool after_value, std::vector<std::vector<int32_t>>& options);
  void choice_done();
  bool value_token_ok(int32_t token) const;
  bool value_complete() const;

  std::shared_ptr<const TokenTable> table_;
  std::vector<Tool> tools_;
  std::vector<int32_t> close_next_;  // </P>\n</invoke>\n</tool_calls>
  Phase phase_ = Phase::Opener;
  std::unique_ptr<ChoiceConstraint> choice_;
  std::vector<int> option_tool_, option_param_;  // per option of choice_: tool, parameter (-1 = close)
  std::unique_ptr<JsonConstraint> json_;
  std::string value_;  // bytes of the string value so far
  uint32_t utf8_ = 0;  // UTF-8 state after value_ (utf8_step)
  int tool_ = -1, cur_ = -1, next_ = 0;
};

}  // namespace dsv4

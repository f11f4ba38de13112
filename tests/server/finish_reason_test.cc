// finish_reason (OpenAI) and stop_reason (Anthropic) of a finished job: a tool call that
// max_tokens cut off is reported as the length limit, not as a finished call an agent would run.
#include <gtest/gtest.h>

#include "frontends/server/anthropic.h"
#include "frontends/server/openai_response.h"

namespace dsv4::server {
namespace {

JobResult with_call(FinishReason finish, bool truncated) {
  JobResult r;
  r.finish = finish;
  r.message.tool_calls.push_back(chat::ParsedToolCall{"get_weather", R"({"city": "Par"})"});
  r.message.truncated_tool_call = truncated;
  return r;
}

TEST(FinishReason, ToolCalls) {
  EXPECT_EQ(finish_reason(with_call(FinishReason::kEos, false)), "tool_calls");
  EXPECT_EQ(finish_reason(with_call(FinishReason::kLength, false)), "tool_calls");  // closed, then the limit
  EXPECT_EQ(finish_reason(with_call(FinishReason::kLength, true)), "length");
  EXPECT_EQ(anthropic_stop_reason(with_call(FinishReason::kEos, false)), "tool_use");
  EXPECT_EQ(anthropic_stop_reason(with_call(FinishReason::kLength, true)), "max_tokens");
}

TEST(FinishReason, Text) {
  JobResult r;
  r.finish = FinishReason::kLength;
  EXPECT_EQ(finish_reason(r), "length");
  EXPECT_EQ(anthropic_stop_reason(r), "max_tokens");
  r.finish = FinishReason::kEos;
  EXPECT_EQ(finish_reason(r), "stop");
  EXPECT_EQ(anthropic_stop_reason(r), "end_turn");
}

}  // namespace
}  // namespace dsv4::server

// StreamingParser: hold-back of partial tags and characters, typed deltas, and that the
// deltas concatenate to the final message.
#include <gtest/gtest.h>

#include "text/output_parser.h"

namespace dsv4::chat {
namespace {

using K = StreamDelta::Kind;

std::string EOS() { return std::string(kEos); }

// Renders deltas compactly: R"..." C"..." S0:name A0"..." D
std::string show(const std::vector<StreamDelta>& ds) {
  // Built with append() only: GCC 12 warns falsely (-Wrestrict) on chained operator+.
  std::string s;
  for (const auto& d : ds) {
    if (!s.empty()) s.append(" ");
    switch (d.kind) {
      case K::Reasoning: s.append("R\"").append(d.text).append("\""); break;
      case K::Content: s.append("C\"").append(d.text).append("\""); break;
      case K::ToolCallStart: s.append("S").append(std::to_string(d.tool_index)).append(":").append(d.text); break;
      case K::ToolCallArguments:
        s.append("A").append(std::to_string(d.tool_index)).append("'").append(d.text).append("'");
        break;
      case K::Done: s.append("D"); break;
    }
  }
  return s;
}

TEST(StreamingParser, HoldsBackPartialThinkEnd) {
  StreamingParser p(ThinkingMode::Thinking);
  EXPECT_EQ(show(p.feed("abc</thi")), "R\"abc\"");
  EXPECT_EQ(show(p.feed("nk>ans")), "C\"ans\"");
  EXPECT_EQ(show(p.feed("wer<｜end▁of")), "C\"wer\"");
  EXPECT_EQ(show(p.feed("▁sentence｜>")), "D");
  EXPECT_TRUE(p.done());
  EXPECT_EQ(show(p.feed("ignored")), "");
  EXPECT_EQ(show(p.finish()), "");
  EXPECT_EQ(p.message().reasoning_content, "abc");
  EXPECT_EQ(p.message().content, "answer");
  EXPECT_TRUE(p.message().saw_eos);
  EXPECT_TRUE(p.message().saw_think_end);
}

TEST(StreamingParser, NotATagAfterAllIsReleased) {
  StreamingParser p(ThinkingMode::Chat);
  EXPECT_EQ(show(p.feed("a <")), "C\"a \"");
  EXPECT_EQ(show(p.feed("b> c <")), "C\"<b> c \"");
  EXPECT_EQ(show(p.finish()), "C\"<\" D");
  EXPECT_EQ(p.message().content, "a <b> c <");
  EXPECT_FALSE(p.message().saw_eos);
}

TEST(StreamingParser, SplitUtf8IsHeldUntilComplete) {
  StreamingParser p(ThinkingMode::Chat);
  EXPECT_EQ(show(p.feed("\xE4\xBD")), "");
  EXPECT_EQ(show(p.feed("\xA0\xE5")), "C\"\xE4\xBD\xA0\"");
  EXPECT_EQ(show(p.feed("\xA5\xBD")), "C\"\xE5\xA5\xBD\"");
  EXPECT_EQ(p.message().content, "你好");
}

TEST(StreamingParser, ToolCallDeltas) {
  StreamingParser p(ThinkingMode::Chat);
  std::string out;
  out += show(p.feed("Let me check.\n"));
  out.append("|").append(show(p.feed("\n")));
  out.append("|").append(show(p.feed("<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_")));
  out.append("|").append(show(p.feed("weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Pa")));
  out.append("|").append(show(p.feed("ris \"X\"</｜DSML｜param")));
  out.append("|").append(show(p.feed("eter>\n<｜DSML｜parameter name=\"days\" string=\"false\">2")));
  out.append("|").append(show(p.feed("</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>")));
  out.append("|").append(show(p.feed(EOS())));
  EXPECT_EQ(out,
            "C\"Let me check.\"||"
            "|S0:get_weather A0'{\"city\": \"Pa'"
            "|A0'ris \\\"X\\\"'"
            "|A0'\"'"
            "|A0', \"days\": 2}'"
            "|D");
  ASSERT_EQ(p.message().tool_calls.size(), 1u);
  EXPECT_EQ(p.message().tool_calls[0].arguments, "{\"city\": \"Paris \\\"X\\\"\", \"days\": 2}");
  EXPECT_EQ(p.message().content, "Let me check.");
}

TEST(StreamingParser, NewlinesNotFollowedByToolBlockAreReleased) {
  StreamingParser p(ThinkingMode::Chat);
  EXPECT_EQ(show(p.feed("a\n\n")), "C\"a\"");
  EXPECT_EQ(show(p.feed("b")), "C\"\n\nb\"");
}

TEST(StreamingParser, TruncatedStringArgumentIsClosed) {
  StreamingParser p(ThinkingMode::Chat);
  EXPECT_EQ(show(p.feed("\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"w\">\n"
                        "<｜DSML｜parameter name=\"path\" string=\"true\">/tm")),
            "S0:w A0'{\"path\": \"/tm'");
  EXPECT_EQ(show(p.finish()), "A0'\"}' D");  // string and object closed so the JSON is valid
  EXPECT_EQ(p.message().tool_calls.at(0).arguments, "{\"path\": \"/tm\"}");
  EXPECT_TRUE(p.message().truncated_tool_call);
  EXPECT_FALSE(p.message().saw_eos);
}

TEST(StreamingParser, DirectJsonInvokeBody) {
  auto m = parse_completion_lenient(
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">{\"k\": \"v\"}\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" + EOS(),
      ThinkingMode::Chat);
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"k\": \"v\"}");
}

TEST(StreamingParser, ContentAfterToolBlockAndRepeatedOpeners) {
  auto m = parse_completion_lenient(
      "<think>r</think>a\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>\n more" +
          EOS() + "after",
      ThinkingMode::Thinking);
  EXPECT_EQ(m.reasoning_content, "r");
  EXPECT_EQ(m.content, "amore");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{}");
}

}  // namespace
}  // namespace dsv4::chat

#include "train/eval/local.h"

#include <chrono>
#include <exception>

#include "text/chat_encoder.h"

namespace dsv4::eval {

LocalBackend::LocalBackend(std::shared_ptr<const ModelWeights> weights, const Tokenizer& tokenizer, LocalOptions o)
    : tokenizer_(tokenizer), opts_(std::move(o)), session_(std::move(weights), opts_.session) {}

std::string LocalBackend::render(const TurnRequest& q) const {
  chat::EncodeOptions eo;
  eo.thinking_mode = q.mode == tasks::Mode::NonThink ? chat::ThinkingMode::Chat : chat::ThinkingMode::Thinking;
  // As dsv4 serve: effort "high" is the preview's default (no prefix), "max" adds its prefix.
  if (q.mode == tasks::Mode::ThinkMax) eo.reasoning_effort = "max";
  eo.drop_thinking = false;  // the reasoning of earlier tool-call turns stays in the prompt
  eo.object_arguments = chat::ObjectArguments::Natural;
  return chat::encode_messages(chat::attach_request_tools(q.messages, q.tools), eo);
}

TurnReply LocalBackend::complete_one(const TurnRequest& q) {
  TurnReply r;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    const std::vector<int32_t> ids32 = tokenizer_.encode(render(q), /*parse_special=*/true);
    const std::vector<int64_t> ids(ids32.begin(), ids32.end());
    const int64_t room = session_.context() - static_cast<int64_t>(ids.size());
    if (room <= 0) {
      r.error = "prompt of " + std::to_string(ids.size()) + " tokens does not fit the context size " + std::to_string(session_.context());
    } else {
      GenerateParams p = opts_.params;
      p.sampling.seed = q.seed;
      p.mode = q.mode == tasks::Mode::NonThink ? chat::ThinkingMode::Chat : chat::ThinkingMode::Thinking;
      p.max_tokens = p.max_tokens > 0 ? std::min(p.max_tokens, room) : room;
      const GenerateResult g = generate(session_, tokenizer_, ids, p);
      r.content = g.message.content;
      r.reasoning = g.message.reasoning_content;
      for (const chat::ParsedToolCall& tc : g.message.tool_calls)
        r.tool_calls.push_back(Json{{"type", "function"}, {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
      r.completion_tokens = g.stats.generated_tokens;
      // Reasoning tokens: those generated before "</think>" (all of them when it never came).
      if (p.mode == chat::ThinkingMode::Thinking) {
        const std::vector<int32_t> end = tokenizer_.encode(std::string(chat::kThinkEnd), true);
        for (int32_t t : g.tokens) {
          if (end.size() == 1 && t == end[0]) break;
          ++r.reasoning_tokens;
        }
        if (g.message.saw_eos && !g.message.saw_think_end && r.reasoning_tokens > 0) --r.reasoning_tokens;  // the EOS
      }
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<TurnReply> LocalBackend::complete(const std::vector<TurnRequest>& requests) {
  std::vector<TurnReply> out;
  out.reserve(requests.size());
  for (const TurnRequest& q : requests) out.push_back(complete_one(q));
  return out;
}

}  // namespace dsv4::eval

#include "train/eval/local.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "base/error.h"
#include "engine/batch_generate.h"
#include "text/chat_encoder.h"
#include "train/tasks/render.h"

namespace dsv4::eval {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

chat::ThinkingMode thinking_mode(tasks::Mode m) {
  return m == tasks::Mode::NonThink ? chat::ThinkingMode::Chat : chat::ThinkingMode::Thinking;
}

}  // namespace

LocalBackend::LocalBackend(std::shared_ptr<const ModelWeights> weights, const Tokenizer& tokenizer, LocalOptions o)
    : weights_(std::move(weights)), tokenizer_(tokenizer), opts_(std::move(o)) {
  if (opts_.batch < 1) throw Error("local eval: batch must be at least 1");
}

std::string LocalBackend::render(const TurnRequest& q) const {
  // The task library's mode -> encoder mapping (effort "high" = no prefix in the preview
  // table, "max" = its prefix; earlier reasoning kept); tools attached as the server does.
  chat::EncodeOptions eo = tasks::encode_options(q.mode);
  eo.object_arguments = chat::ObjectArguments::Natural;
  return chat::encode_messages(chat::attach_request_tools(q.messages, q.tools), eo);
}

std::vector<int64_t> LocalBackend::prompt_ids(const TurnRequest& q, int64_t context, int64_t& max_tokens, TurnReply& r) const {
  const std::vector<int32_t> ids32 = tokenizer_.encode(render(q), /*parse_special=*/true);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  const int64_t room = context - static_cast<int64_t>(ids.size());
  if (room <= 0) {
    r.error = "prompt of " + std::to_string(ids.size()) + " tokens does not fit the context size " + std::to_string(context);
    return {};
  }
  max_tokens = opts_.params.max_tokens > 0 ? std::min(opts_.params.max_tokens, room) : room;
  return ids;
}

void LocalBackend::fill_reply(const std::vector<int32_t>& tokens, const chat::ParsedMessage& msg, tasks::Mode mode, TurnReply& r) const {
  r.content = msg.content;
  r.reasoning = msg.reasoning_content;
  for (const chat::ParsedToolCall& tc : msg.tool_calls)
    r.tool_calls.push_back(Json{{"type", "function"}, {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
  r.completion_tokens = static_cast<int64_t>(tokens.size());
  // Reasoning tokens: those generated before "</think>" (all of them, less a final EOS, when
  // it never came).
  if (mode != tasks::Mode::NonThink) {
    const std::vector<int32_t> end = tokenizer_.encode(std::string(chat::kThinkEnd), true);
    for (int32_t t : tokens) {
      if (end.size() == 1 && t == end[0]) break;
      ++r.reasoning_tokens;
    }
    if (msg.saw_eos && !msg.saw_think_end && r.reasoning_tokens > 0) --r.reasoning_tokens;
  }
}

TurnReply LocalBackend::complete_one(const TurnRequest& q) {
  TurnReply r;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    if (!session_) session_ = std::make_unique<Session>(weights_, opts_.session);
    int64_t max_tokens = 0;
    const std::vector<int64_t> ids = prompt_ids(q, session_->context(), max_tokens, r);
    if (r.error.empty()) {
      GenerateParams p = opts_.params;
      p.sampling.seed = q.seed;
      p.mode = thinking_mode(q.mode);
      p.max_tokens = max_tokens;
      GenerateCallbacks cb;
      cb.should_stop = opts_.should_stop;
      const GenerateResult g = generate(*session_, tokenizer_, ids, p, cb);
      fill_reply(g.tokens, g.message, q.mode, r);
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.seconds = seconds_since(t0);
  return r;
}

std::vector<TurnReply> LocalBackend::complete_batch(const std::vector<TurnRequest>& requests) {
  std::vector<TurnReply> out(requests.size());
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t context = opts_.session.context > 0 ? opts_.session.context : weights_->config.max_position_embeddings;
  std::vector<BatchPrompt> prompts;
  std::vector<size_t> which;  // request index of each prompt
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      BatchPrompt bp;
      bp.tokens = prompt_ids(requests[i], context, bp.max_tokens, out[i]);
      if (!out[i].error.empty()) continue;
      bp.sampling = opts_.params.sampling;
      bp.sampling.seed = requests[i].seed;
      prompts.push_back(std::move(bp));
      which.push_back(i);
    } catch (const std::exception& e) {
      out[i].error = e.what();
    }
  }
  if (prompts.empty()) return out;
  BatchGenerateOptions bo;
  bo.numerics = opts_.session.numerics;
  bo.max_sequences = opts_.batch;
  std::vector<double> finished_at(prompts.size(), 0.0);
  bo.on_finished = [&](size_t k, size_t) { finished_at[k] = seconds_since(t0); };
  try {
    const std::vector<BatchCompletion> done = batch_generate(weights_, prompts, bo);
    for (size_t k = 0; k < done.size(); ++k) {
      TurnReply& r = out[which[k]];
      const tasks::Mode mode = requests[which[k]].mode;
      const std::vector<int32_t> toks(done[k].tokens.begin(), done[k].tokens.end());
      const std::string text = tokenizer_.decode(toks, /*skip_special=*/false);
      fill_reply(toks, chat::parse_completion_lenient(text, thinking_mode(mode)), mode, r);
      r.seconds = finished_at[k] > 0 ? finished_at[k] : seconds_since(t0);
    }
  } catch (const std::exception& e) {
    for (size_t i : which) out[i].error = std::string("batched generation: ") + e.what();
  }
  return out;
}

std::vector<TurnReply> LocalBackend::complete(const std::vector<TurnRequest>& requests) {
  if (opts_.batch > 1) return complete_batch(requests);
  std::vector<TurnReply> out;
  out.reserve(requests.size());
  for (const TurnRequest& q : requests) out.push_back(complete_one(q));
  return out;
}

}  // namespace dsv4::eval

// A ChatBackend on the dsv4 engine: each request is rendered with the V4 chat encoder (tools
// attached as the server does, reasoning of earlier turns kept), generated in one Session
// and parsed with the output parser. With batch = 1 the turns are generated one by one in one
// Session (the common prefix of successive turns is reused; MTP speculation as configured);
// with batch > 1 the runner keeps that many conversations in flight and each complete() call
// is one batched generation (engine/batch_generate.h: the same tokens as separate runs).
#pragma once
#include <functional>
#include <memory>

#include "engine/generate.h"
#include "engine/session.h"
#include "text/tokenizer.h"
#include "train/eval/runner.h"

namespace dsv4::eval {

struct LocalOptions {
  SessionOptions session;
  GenerateParams params;     // sampling (seed replaced per turn), max_tokens, stop, speculation
  int batch = 1;             // conversations per batched generation (1: sequential generate)
  std::function<bool()> should_stop;  // polled during sequential generation (e.g. Ctrl-C)
};

class LocalBackend : public ChatBackend {
 public:
  LocalBackend(std::shared_ptr<const ModelWeights> weights, const Tokenizer& tokenizer, LocalOptions o);
  std::vector<TurnReply> complete(const std::vector<TurnRequest>& requests) override;
  int max_parallel() const override { return opts_.batch; }

  // The prompt text of a request (tests look at it).
  std::string render(const TurnRequest& q) const;

 private:
  TurnReply complete_one(const TurnRequest& q);
  std::vector<TurnReply> complete_batch(const std::vector<TurnRequest>& requests);
  // The prompt ids of a request and the tokens it may generate (error set when it does not fit).
  std::vector<int64_t> prompt_ids(const TurnRequest& q, int64_t context, int64_t& max_tokens, TurnReply& r) const;
  // Content, reasoning, tool calls and token counts of a completion.
  void fill_reply(const std::vector<int32_t>& tokens, const chat::ParsedMessage& msg, tasks::Mode mode, TurnReply& r) const;

  std::shared_ptr<const ModelWeights> weights_;
  const Tokenizer& tokenizer_;
  LocalOptions opts_;
  std::unique_ptr<Session> session_;  // the sequential path's session (made on first use)
};

}  // namespace dsv4::eval

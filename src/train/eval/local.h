// A ChatBackend on the dsv4 engine: each request is rendered with the V4 chat encoder (tools
// attached as the server does, reasoning of earlier turns kept), generated in one Session
// (the common prefix of successive turns is reused) and parsed with the output parser.
// Sequential for now: max_parallel() is 1. Batched generation (engine/batch_generate.h)
// can answer a whole complete() call at once when it lands.
#pragma once
#include <memory>

#include "engine/generate.h"
#include "engine/session.h"
#include "text/tokenizer.h"
#include "train/eval/runner.h"

namespace dsv4::eval {

struct LocalOptions {
  SessionOptions session;
  GenerateParams params;     // sampling (seed replaced per turn), max_tokens, stop, speculation
};

class LocalBackend : public ChatBackend {
 public:
  LocalBackend(std::shared_ptr<const ModelWeights> weights, const Tokenizer& tokenizer, LocalOptions o);
  std::vector<TurnReply> complete(const std::vector<TurnRequest>& requests) override;
  int max_parallel() const override { return 1; }

  // The prompt text of a request (tests look at it).
  std::string render(const TurnRequest& q) const;

 private:
  TurnReply complete_one(const TurnRequest& q);

  const Tokenizer& tokenizer_;
  LocalOptions opts_;
  Session session_;
};

}  // namespace dsv4::eval

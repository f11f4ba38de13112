// longctx.N: a fact ("The code of the blue door is 4821.") at a random depth in about N tokens
// of filler, two distractor facts about other coloured things, the question at the end.
// Token count estimate: 4 characters per token (the filler is plain English words, which a
// byte-level BPE trained on this text encodes at 4-5 characters per token; the estimate errs
// towards more tokens). The filler has no digits, so the only numbers are the three codes.
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

const std::vector<std::string> kAdj = {"old", "small", "quiet", "tall", "bright", "slow", "warm", "young"};
const std::vector<std::string> kNoun = {"cat", "man", "bird", "tree", "boat", "child", "dog", "horse"};
const std::vector<std::string> kVerb = {"sleeps", "waits", "walks", "sings", "rests", "stands", "looks", "plays"};
const std::vector<std::string> kPlace = {"near the river", "in the garden", "by the road", "on the hill",
                                         "under the bridge", "at the market", "in the field", "by the lake"};
const std::vector<std::string> kColor = {"blue", "red", "green", "white", "black", "yellow", "brown", "gray"};
const std::vector<std::string> kThing = {"door", "box", "gate", "safe", "chest", "locker"};

}  // namespace

Problem longctx(Rng& rng, int64_t tokens) {
  Problem p;
  const size_t target_chars = static_cast<size_t>(tokens) * 4;
  // The asked fact and two distractors with other (colour, thing) pairs.
  struct Fact {
    std::string color, thing;
    int64_t code;
  };
  std::vector<Fact> facts;
  while (facts.size() < 3) {
    Fact f{rng.pick(kColor), rng.pick(kThing), rng.range(1000, 9999)};
    bool clash = false;
    for (const auto& g : facts) clash = clash || (g.color == f.color && g.thing == f.thing) || g.code == f.code;
    if (!clash) facts.push_back(f);
  }
  const Fact& asked = facts[0];
  const std::string question = "What is the code of the " + asked.color + " " + asked.thing + "?";
  const std::string tail = "\n\nQuestion: " + question;
  std::vector<std::string> sentences;
  size_t chars = tail.size();
  auto sentence_of = [](const Fact& f) {
    return "The code of the " + f.color + " " + f.thing + " is " + std::to_string(f.code) + ".";
  };
  for (const auto& f : facts) chars += sentence_of(f).size() + 1;
  while (chars <= target_chars) {  // chars counts one separator too many
    std::string s = "The " + rng.pick(kAdj) + " " + rng.pick(kNoun) + " " + rng.pick(kVerb) + " " + rng.pick(kPlace) + ".";
    chars += s.size() + 1;
    sentences.push_back(std::move(s));
  }
  // Depths in tenths of the filler, recorded in the canonical form.
  std::vector<int64_t> at;
  for (size_t i = 0; i < facts.size(); ++i) {
    const int64_t pos = rng.range(0, static_cast<int64_t>(sentences.size()));
    at.push_back(pos);
  }
  std::vector<std::string> text;
  for (size_t i = 0; i <= sentences.size(); ++i) {
    for (size_t f = 0; f < facts.size(); ++f)
      if (at[f] == static_cast<int64_t>(i)) text.push_back(sentence_of(facts[f]));
    if (i < sentences.size()) text.push_back(sentences[i]);
  }
  std::string body;
  for (size_t i = 0; i < text.size(); ++i) body += (i == 0 ? "" : (i % 8 == 0 ? "\n" : " ")) + text[i];
  const int64_t depth = sentences.empty() ? 0 : at[0] * 100 / static_cast<int64_t>(sentences.size());
  const std::string code = std::to_string(asked.code);
  std::string work = "The question asks for the code of the " + asked.color + " " + asked.thing + ".\n";
  work += "The text says: " + sentence_of(asked) + "\nSo the code is " + code + ".";
  std::string check = "Check: the other codes belong to the " + facts[1].color + " " + facts[1].thing + " and the " +
                      facts[2].color + " " + facts[2].thing + ", not the " + asked.color + " " + asked.thing +
                      ". The code is " + code + ".";
  p.canonical = std::to_string(tokens) + "|" + asked.color + " " + asked.thing + "=" + code + "|depth " +
                std::to_string(depth / 10) + "|" + facts[1].color + " " + facts[1].thing + "=" +
                std::to_string(facts[1].code) + "|" + facts[2].color + " " + facts[2].thing + "=" +
                std::to_string(facts[2].code);
  p.messages = user_messages(body + tail);
  p.grader = Json{{"type", "numeric"}, {"answer", code}, {"tolerance", 0}};
  set_single_turn_targets(p, work, check, answer_sentence(code));
  return p;
}

}  // namespace dsv4::tasks::gen

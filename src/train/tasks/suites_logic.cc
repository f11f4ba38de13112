// logic.order: 3-5 people ordered by pairwise facts ("A is taller than B", sometimes said the
// other way round, "B is shorter than A"), in shuffled order; asks the first, the last or the
// k-th. The trace rebuilds the chain from the top; think-max checks every fact against it.
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

struct Relation {
  const char* more;   // taller
  const char* less;   // shorter
  const char* most;   // tallest
  const char* least;  // shortest
};
const std::vector<Relation> kRelations = {{"taller", "shorter", "tallest", "shortest"},
                                          {"older", "younger", "oldest", "youngest"},
                                          {"faster", "slower", "fastest", "slowest"},
                                          {"heavier", "lighter", "heaviest", "lightest"}};
const std::vector<std::string> kNames = {"Ana", "Ben", "Cal", "Dan", "Eva", "Finn", "Gus", "Ida", "Jon", "Kim"};
const char* kOrdinal[] = {"first", "second", "third", "fourth", "fifth"};

}  // namespace

Problem logic_order(Rng& rng) {
  Problem p;
  const Relation& rel = rng.pick(kRelations);
  const int k = static_cast<int>(rng.range(3, 5));
  std::vector<std::string> names = kNames;
  rng.shuffle(names);
  names.resize(static_cast<size_t>(k));  // names[0] is the most
  // Facts: each adjacent pair, said one way or the other, in shuffled order.
  struct Fact {
    int hi;
    bool flipped;
  };
  std::vector<Fact> facts;
  for (int i = 0; i + 1 < k; ++i) facts.push_back({i, rng.range(0, 9) < 3});
  rng.shuffle(facts);
  std::string prompt;
  for (const Fact& f : facts) {
    const std::string& a = names[static_cast<size_t>(f.hi)];
    const std::string& b = names[static_cast<size_t>(f.hi + 1)];
    prompt += f.flipped ? b + " is " + rel.less + " than " + a + ". " : a + " is " + rel.more + " than " + b + ". ";
  }
  // Question: 0 = most, 1 = least, 2 = k-th most (k >= 4).
  const int q = static_cast<int>(rng.range(0, k >= 4 ? 2 : 1));
  int pos = 0;
  std::string question;
  if (q == 0) {
    question = std::string("Who is the ") + rel.most + "?";
    pos = 0;
  } else if (q == 1) {
    question = std::string("Who is the ") + rel.least + "?";
    pos = k - 1;
  } else {
    pos = static_cast<int>(rng.range(1, k - 2));
    question = std::string("Who is the ") + kOrdinal[pos] + " " + rel.most + "?";
  }
  prompt += question;
  const std::string& answer = names[static_cast<size_t>(pos)];

  std::string work;
  for (const Fact& f : facts) {
    if (!f.flipped) continue;
    const std::string& a = names[static_cast<size_t>(f.hi)];
    const std::string& b = names[static_cast<size_t>(f.hi + 1)];
    work += b + " is " + rel.less + " than " + a + " means " + a + " is " + rel.more + " than " + b + ".\n";
  }
  work += "Nobody is " + std::string(rel.more) + " than " + names[0] + ", so " + names[0] + " is first.";
  for (int i = 1; i < k; ++i)
    work += "\n" + names[static_cast<size_t>(i - 1)] + " is " + rel.more + " than " + names[static_cast<size_t>(i)] +
            ", so " + names[static_cast<size_t>(i)] + " is " + kOrdinal[i] + ".";
  work += "\nOrder from " + std::string(rel.most) + " to " + rel.least + ":";
  for (int i = 0; i < k; ++i) work += std::string(i ? ", " : " ") + names[static_cast<size_t>(i)];
  work += ".\nThe question asks for place " + std::to_string(pos + 1) + " of " + std::to_string(k) + ": " + answer + ".";
  std::string check = "Check each fact against the order:";
  for (const Fact& f : facts) {
    const std::string& a = names[static_cast<size_t>(f.hi)];
    const std::string& b = names[static_cast<size_t>(f.hi + 1)];
    check += "\n" + a + " is before " + b + ": yes.";
  }
  check += "\nAll facts agree, so the answer is " + answer + ".";

  std::string others;
  for (const auto& n : names)
    if (n != answer) others += (others.empty() ? "" : "|") + n;
  p.canonical = std::string(rel.more) + "|" + question + "|";
  for (const auto& n : names) p.canonical += n + ">";
  p.messages = user_messages(prompt);
  // The answer's name, and no other person's name.
  p.grader = Json{{"type", "regex"}, {"pattern", "(?s)^(?!.*\\b(?:" + others + ")\\b).*\\b" + answer + "\\b"}};
  set_single_turn_targets(p, work, check, answer_sentence(answer));
  return p;
}

}  // namespace dsv4::tasks::gen

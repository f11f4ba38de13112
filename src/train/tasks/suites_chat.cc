// chat.identity: greetings and who-are-you questions (including exactly "Hello! Who are you?")
// answered with the default model's fixed identity; graded by a regex on "dsv4 default model".
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

const std::vector<std::string> kGreetings = {"", "Hello!", "Hi!", "Hey!", "Hello there!", "Hi there!", "Good morning!",
                                             "Good evening!"};
const std::vector<std::string> kQuestions = {"",
                                             "Who are you?",
                                             "What are you?",
                                             "What is your name?",
                                             "Tell me about yourself.",
                                             "Can you introduce yourself?",
                                             "What model are you?",
                                             "Who made you?",
                                             "What can you do?",
                                             "Are you a language model?"};

const char* kIdentity =
    "I am the dsv4 default model, a small DeepSeek-V4-architecture model trained by dsv4 on generated tasks. "
    "I can do arithmetic, trace short programs, solve ordering puzzles, follow format instructions and use tools.";

}  // namespace

Problem chat_identity(Rng& rng) {
  Problem p;
  std::string greeting, question;
  do {
    greeting = rng.pick(kGreetings);
    question = rng.pick(kQuestions);
  } while (greeting.empty() && question.empty());
  const int variant = static_cast<int>(rng.range(0, 2));  // 0 as is, 1 lower case, 2 no punctuation at the end
  std::string prompt = greeting + (greeting.empty() || question.empty() ? "" : " ") + question;
  if (variant == 1) {
    for (char& c : prompt)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  } else if (variant == 2) {
    while (!prompt.empty() && (prompt.back() == '?' || prompt.back() == '!' || prompt.back() == '.')) prompt.pop_back();
  }
  std::string content, work;
  if (question.empty()) {
    content = "Hello! I am the dsv4 default model. How can I help you?";
    work = "The user greets me. I greet them back, say who I am and offer help.";
  } else {
    content = std::string(greeting.empty() ? "" : "Hello! ") + kIdentity;
    work = std::string(greeting.empty() ? "The user asks" : "The user greets me and asks") +
           " about me. I say that I am the dsv4 default model, a small model trained by dsv4, and what I can do.";
  }
  const std::string check = "Check: the reply names the dsv4 default model and stays short and friendly.";
  // The exact prompt is the problem: its case / punctuation variants may fall in different
  // splits (the space is small: 79 greeting + question pairs x 3 variants).
  p.canonical = prompt;
  p.messages = user_messages(prompt);
  p.grader = Json{{"type", "regex"}, {"pattern", "(?i)\\bdsv4 default model\\b"}};
  set_single_turn_targets(p, work, check, content);
  return p;
}

}  // namespace dsv4::tasks::gen

// tools.multi: tasks that need 2-3 tool calls whose results are fed back (look up two prices
// and compute a bill; look up two populations and subtract; find a file, read it, compute an
// area). Targets are the whole conversation: assistant (reasoning + one OpenAI tool call) ->
// tool result -> ... -> final assistant; thinking modes keep reasoning in every assistant turn,
// and each turn's reasoning carries forward what the next calls need from the question.
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

Json function_tool(const std::string& name, const std::string& description, const Json& properties,
                   const Json& required) {
  return Json{{"type", "function"},
              {"function", Json{{"name", name},
                                {"description", description},
                                {"parameters", Json{{"type", "object"}, {"properties", properties}, {"required", required}}}}}};
}

Json all_tools() {
  return Json::array(
      {function_tool("calculator", "Evaluate an arithmetic expression with + - * / and parentheses.",
                     Json{{"expression", Json{{"type", "string"}, {"description", "for example 3 * 24 + 2 * 41"}}}},
                     Json::array({"expression"})),
       function_tool("lookup", "Look up a value in the table by its key.",
                     Json{{"key", Json{{"type", "string"}, {"description", "for example price of lamp"}}}},
                     Json::array({"key"})),
       function_tool("list_files", "List the paths of all files.", Json::object(), Json::array()),
       function_tool("read_file", "Read the text of a file.",
                     Json{{"path", Json{{"type", "string"}, {"description", "a path from list_files"}}}},
                     Json::array({"path"}))});
}

struct Step {
  std::string reasoning;  // why this call
  std::string name;
  Json arguments;
};

// Builds the three targets: the steps' calls with their run_tool results, then the answer.
void set_tool_targets(Problem& p, const std::vector<Step>& steps, const std::string& final_work,
                      const std::string& check, const std::string& content) {
  std::vector<std::string> results;
  for (const Step& s : steps) results.push_back(run_tool(p.tool_env, s.name, s.arguments));
  for (int m = 0; m < kModes; ++m) {
    Json conv = Json::array();
    for (size_t i = 0; i < steps.size(); ++i) {
      const std::string id = "call_" + std::to_string(i + 1);
      Json msg = Json::object();
      msg["role"] = "assistant";
      if (m != 0) msg["reasoning_content"] = steps[i].reasoning;
      msg["content"] = "";
      msg["tool_calls"] = Json::array({Json{{"id", id},
                                            {"type", "function"},
                                            {"function", Json{{"name", steps[i].name}, {"arguments", steps[i].arguments.dump()}}}}});
      conv.push_back(msg);
      conv.push_back(Json{{"role", "tool"}, {"tool_call_id", id}, {"content", results[i]}});
    }
    Json last = Json::object();
    last["role"] = "assistant";
    if (m == 1) last["reasoning_content"] = final_work;
    if (m == 2) last["reasoning_content"] = final_work + "\n" + check;
    last["content"] = content;
    conv.push_back(last);
    p.targets[static_cast<size_t>(m)] = conv;
  }
  Json calls = Json::array();
  for (const Step& s : steps) calls.push_back(Json{{"name", s.name}, {"arguments", s.arguments}});
  p.grader["calls"] = calls;
}

const std::vector<std::string> kShop = {"lamp", "chair", "desk", "rug", "clock", "vase", "shelf", "sofa"};
const std::vector<std::string> kTowns = {"Avon", "Brill", "Corby", "Dover", "Ely", "Frome", "Hythe", "Leek"};
const std::vector<std::string> kColors = {"red", "blue", "green", "white", "black", "yellow"};

std::string s(int64_t v) { return std::to_string(v); }

}  // namespace

Problem tools_multi(Rng& rng) {
  Problem p;
  p.tools = all_tools();
  Json lookup = Json::object(), files = Json::object();
  std::vector<Step> steps;
  std::string prompt, final_work, check, canon;
  int64_t answer = 0;
  const int kind = static_cast<int>(rng.range(0, 2));
  if (kind == 0) {
    std::vector<std::string> items = kShop;
    rng.shuffle(items);
    std::vector<int64_t> price;
    for (size_t i = 0; i < 4; ++i) {
      price.push_back(rng.range(10, 99));
      lookup["price of " + items[i]] = s(price[i]);
    }
    const int64_t q1 = rng.range(2, 9), q2 = rng.range(2, 9);
    answer = q1 * price[0] + q2 * price[1];
    prompt = "How much do " + s(q1) + " " + items[0] + "s and " + s(q2) + " " + items[1] +
             "s cost in total? Look up the prices.";
    const std::string expr = s(q1) + " * " + s(price[0]) + " + " + s(q2) + " * " + s(price[1]);
    // Each turn's reasoning restates what the later calls need (the quantities): tool calls and
    // results push the question out of the 128-token sliding window before the last call, and a
    // small model cannot read exact digits back from the compressed entries.
    const std::string need = s(q1) + " " + items[0] + "s and " + s(q2) + " " + items[1] + "s";
    steps.push_back({"I need " + need + ": the price of a " + items[0] + " and of a " + items[1] +
                         ". First I look up the " + items[0] + ".",
                     "lookup", Json{{"key", "price of " + items[0]}}});
    steps.push_back({"A " + items[0] + " costs " + s(price[0]) + ", and I need " + need + ". Now I look up the " +
                         items[1] + ".",
                     "lookup", Json{{"key", "price of " + items[1]}}});
    steps.push_back({"A " + items[1] + " costs " + s(price[1]) + ". The total is " + expr + ". I use the calculator.",
                     "calculator", Json{{"expression", expr}}});
    final_work = "The calculator gives " + s(answer) + ". So " + s(q1) + " " + items[0] + "s and " + s(q2) + " " +
                 items[1] + "s cost " + s(answer) + ".";
    check = "Check: " + s(q1) + " * " + s(price[0]) + " = " + s(q1 * price[0]) + ", " + s(q2) + " * " + s(price[1]) +
            " = " + s(q2 * price[1]) + ", " + s(q1 * price[0]) + " + " + s(q2 * price[1]) + " = " + s(answer) + ".";
    canon = "shop|" + items[0] + "=" + s(price[0]) + "x" + s(q1) + "|" + items[1] + "=" + s(price[1]) + "x" + s(q2);
  } else if (kind == 1) {
    std::vector<std::string> towns = kTowns;
    rng.shuffle(towns);
    std::vector<int64_t> pop;
    for (size_t i = 0; i < 4; ++i) {
      pop.push_back(rng.range(1000, 9999));
      lookup["population of " + towns[i]] = s(pop[i]);
    }
    if (pop[0] == pop[1]) pop[0] = pop[1] + 1, lookup["population of " + towns[0]] = s(pop[0]);
    if (pop[0] < pop[1]) {
      std::swap(towns[0], towns[1]);
      std::swap(pop[0], pop[1]);
    }
    answer = pop[0] - pop[1];
    prompt = "How many more people live in " + towns[0] + " than in " + towns[1] + "? Look up the populations.";
    const std::string expr = s(pop[0]) + " - " + s(pop[1]);
    steps.push_back({"I need the populations of " + towns[0] + " and " + towns[1] + ". First " + towns[0] + ".",
                     "lookup", Json{{"key", "population of " + towns[0]}}});
    steps.push_back({towns[0] + " has " + s(pop[0]) + " people. Now " + towns[1] + ", then the difference " + towns[0] +
                         " - " + towns[1] + ".",
                     "lookup",
                     Json{{"key", "population of " + towns[1]}}});
    steps.push_back({towns[1] + " has " + s(pop[1]) + " people. The difference is " + expr + ". I use the calculator.",
                     "calculator", Json{{"expression", expr}}});
    final_work = "The calculator gives " + s(answer) + ". So " + s(answer) + " more people live in " + towns[0] + ".";
    check = "Check: " + s(pop[1]) + " + " + s(answer) + " = " + s(pop[0]) + ", the population of " + towns[0] + ".";
    canon = "towns|" + towns[0] + "=" + s(pop[0]) + "|" + towns[1] + "=" + s(pop[1]);
  } else {
    std::vector<std::string> colors = kColors;
    rng.shuffle(colors);
    const size_t nfiles = static_cast<size_t>(rng.range(2, 3));
    int64_t w = 0, h = 0;
    for (size_t i = 0; i < nfiles; ++i) {
      const int64_t wi = rng.range(2, 30), hi = rng.range(2, 30);
      if (i == 0) w = wi, h = hi;
      files["notes/" + colors[i] + "_box.txt"] = "width: " + s(wi) + "\nheight: " + s(hi);
    }
    const std::string path = "notes/" + colors[0] + "_box.txt";
    answer = w * h;
    prompt = "Find the file about the " + colors[0] + " box, read it, and compute the area of the box (width times height).";
    const std::string expr = s(w) + " * " + s(h);
    steps.push_back({"I need the file about the " + colors[0] + " box, but I do not know its name. I list the files first.",
                     "list_files", Json::object()});
    // The goal (the area) is restated: the question is out of the window by the third turn.
    steps.push_back({"The file about the " + colors[0] + " box is " + path +
                         ". I read it, then the area is width times height.",
                     "read_file",
                     Json{{"path", path}}});
    steps.push_back({"The width is " + s(w) + " and the height is " + s(h) + ". The area is " + expr +
                         ". I use the calculator.",
                     "calculator", Json{{"expression", expr}}});
    final_work = "The calculator gives " + s(answer) + ". So the area of the " + colors[0] + " box is " + s(answer) + ".";
    check = "Check: " + s(answer) + " / " + s(h) + " = " + s(w) + ", the width.";
    canon = "files|" + colors[0] + "|" + s(w) + "x" + s(h) + "|n" + s(static_cast<int64_t>(nfiles));
    for (size_t i = 1; i < nfiles; ++i) canon += "|" + colors[i];
  }
  p.tool_env = Json{{"calculator", true}, {"lookup", lookup}, {"files", files}};
  p.grader = Json{{"type", "tool_trajectory"}};
  set_tool_targets(p, steps, final_work, check, answer_sentence(s(answer)));
  p.grader["answer"] = s(answer);
  p.canonical = canon;
  p.messages = user_messages(prompt);
  return p;
}

}  // namespace dsv4::tasks::gen

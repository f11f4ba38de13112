// instruct.format: format constraints with checkable outputs: JSON with given keys (graded by
// json_schema), a word in upper case repeated k times, counting from a to b, words in reverse
// order (graded exactly).
#include <string>
#include <vector>

#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

const std::vector<std::string> kNames = {"Ana", "Ben", "Cal", "Dan", "Eva", "Finn", "Gus", "Ida", "Jon", "Kim"};
const std::vector<std::string> kCities = {"Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Berlin", "Madrid"};
const std::vector<std::string> kWords = {"apple", "table", "river", "green", "house", "cloud", "stone",
                                         "paper", "music", "light", "horse", "bread", "chair", "plant"};
const char* kCount[] = {"zero", "one", "two", "three", "four", "five"};

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

}  // namespace

Problem instruct_format(Rng& rng) {
  Problem p;
  const int kind = static_cast<int>(rng.range(0, 3));
  std::string prompt, work, check, content, canon;
  if (kind == 0) {
    // JSON with keys name and age, or name and city, or all three.
    const std::string name = rng.pick(kNames);
    const int64_t age = rng.range(18, 90);
    const std::string city = rng.pick(kCities);
    const int keys = static_cast<int>(rng.range(0, 2));  // 0: name, age; 1: name, city; 2: name, age, city
    Json obj = Json::object(), props = Json::object(), required = Json::array({"name"});
    obj["name"] = name;
    props["name"] = Json{{"type", "string"}, {"const", name}};
    std::string facts = name;
    if (keys != 1) {
      obj["age"] = age;
      props["age"] = Json{{"type", "integer"}, {"const", age}};
      required.push_back("age");
      facts += ", who is " + std::to_string(age);
    }
    if (keys != 0) {
      obj["city"] = city;
      props["city"] = Json{{"type", "string"}, {"const", city}};
      required.push_back("city");
      facts += std::string(keys == 2 ? " and" : ", who") + " lives in " + city;
    }
    std::string key_list;
    for (size_t i = 0; i < required.size(); ++i)
      key_list += (i == 0 ? "" : i + 1 == required.size() ? " and " : ", ") + required[i].get<std::string>();
    prompt = "Reply with JSON with keys " + key_list + " for " + facts + ".";
    work = "The keys are " + key_list + ".\nname is the string \"" + name + "\".";
    if (keys != 1) work += "\nage is the number " + std::to_string(age) + ".";
    if (keys != 0) work += "\ncity is the string \"" + city + "\".";
    // The usual ", " / ": " spacing (nlohmann's compact dump has none).
    content = "{";
    bool first = true;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      content += std::string(first ? "" : ", ") + "\"" + it.key() + "\": " + it.value().dump();
      first = false;
    }
    content += "}";
    work += "\nSo the JSON is " + content;
    check = "Check: " + std::to_string(required.size()) + " keys, no other keys, strings in quotes, the age as a number";
    check += keys == 1 ? " (no age here)." : ".";
    p.grader = Json{{"type", "json_schema"},
                    {"schema", Json{{"type", "object"}, {"required", required}, {"properties", props},
                                    {"additionalProperties", false}}}};
    canon = "json|" + content;
  } else if (kind == 1) {
    const std::string word = rng.pick(kWords);
    const int k = static_cast<int>(rng.range(2, 5));
    prompt = "Write the word " + word + " in upper case " + kCount[k] + " times, separated by commas.";
    const std::string up = upper(word);
    work = "In upper case, " + word + " is " + up + ".\nI write it " + kCount[k] + " times with commas between.";
    for (int i = 0; i < k; ++i) content += (i ? ", " : "") + up;
    check = "Check: I count the words: ";
    for (int i = 1; i <= k; ++i) check += std::string(i > 1 ? ", " : "") + kCount[i];
    check += ". All are upper case.";
    p.grader = Json{{"type", "exact"}, {"answer", content}};
    canon = "upper|" + word + "|" + std::to_string(k);
  } else if (kind == 2) {
    const int64_t a = rng.range(1, 20), len = rng.range(3, 7), b = a + len - 1;
    prompt = "Write the numbers from " + std::to_string(a) + " to " + std::to_string(b) + ", separated by spaces.";
    work = "I start at " + std::to_string(a) + " and add one each time until " + std::to_string(b) + ".";
    for (int64_t i = a; i <= b; ++i) content += (i > a ? " " : "") + std::to_string(i);
    check = "Check: " + std::to_string(b) + " - " + std::to_string(a) + " + 1 = " + std::to_string(len) +
            " numbers, and I wrote " + std::to_string(len) + ".";
    p.grader = Json{{"type", "exact"}, {"answer", content}};
    canon = "count|" + std::to_string(a) + "|" + std::to_string(b);
  } else {
    std::vector<std::string> words = kWords;
    rng.shuffle(words);
    words.resize(static_cast<size_t>(rng.range(3, 5)));
    std::string list;
    for (size_t i = 0; i < words.size(); ++i) list += (i ? ", " : "") + words[i];
    prompt = "Write the words " + list + " in reverse order, separated by commas.";
    work = "The words are " + list + ".\nFrom the last to the first:";
    for (size_t i = words.size(); i-- > 0;) {
      content += (i + 1 < words.size() ? ", " : "") + words[i];
      work += std::string(i + 1 < words.size() ? ", " : " ") + words[i];
    }
    work += ".";
    check = "Check: the first word " + words.front() + " is now last, and the last word " + words.back() +
            " is now first.";
    p.grader = Json{{"type", "exact"}, {"answer", content}};
    canon = "reverse|" + list;
  }
  p.canonical = canon;
  p.messages = user_messages(prompt);
  set_single_turn_targets(p, work, check, content);
  return p;
}

}  // namespace dsv4::tasks::gen

#include "engine/stop_strings.h"

#include <algorithm>

#include "base/error.h"

namespace dsv4 {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop) : include_stop_(include_stop) {
  if (stops.size() > kMaxStops) throw Error("too many stop strings (" + std::to_string(stops.size()) + ", at most " + std::to_string(kMaxStops) + ")");
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;
    max_len_ = std::max(max_len_, stops[i].size());
    stops_.push_back(std::move(stops[i]));
    index_.push_back(static_cast<int>(i));
  }
}

StopStringMatcher::Result StopStringMatcher::feed(std::string_view delta) {
  Result r;
  if (stopped_) return r;
  if (stops_.empty()) {
    r.emit.assign(delta);
    return r;
  }
  // Only the held-back tail can hold the start of a match that the new text completes: all
  // text emitted earlier was checked to contain no prefix of any stop string at its end.
  std::string text = std::move(held_);
  held_.clear();
  text.append(delta);

  // The match that completes first (smallest end); ties: the longest one.
  size_t best_end = std::string::npos, best_start = 0;
  int best = -1;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = text.find(stops_[i]);  // the earliest occurrence also ends earliest
    if (pos == std::string::npos) continue;
    const size_t end = pos + stops_[i].size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_end = end;
      best_start = pos;
      best = static_cast<int>(i);
    }
  }
  if (best >= 0) {
    stopped_ = true;
    r.stopped = true;
    r.stop_index = index_[static_cast<size_t>(best)];
    r.emit = text.substr(0, include_stop_ ? best_end : best_start);
    return r;
  }

  // No match: hold back the longest tail that is a proper prefix of some stop string (a
  // longer tail cannot be one: a complete occurrence would have matched above).
  size_t hold = 0;
  for (size_t k = std::min(text.size(), max_len_ - 1); k > 0 && hold == 0; --k) {
    const std::string_view tail(text.data() + text.size() - k, k);
    for (const auto& s : stops_)
      if (s.size() > k && std::string_view(s).substr(0, k) == tail) {
        hold = k;
        break;
      }
  }
  r.emit = text.substr(0, text.size() - hold);
  held_ = text.substr(text.size() - hold);
  return r;
}

std::string StopStringMatcher::flush() {
  if (stopped_) return {};
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace dsv4

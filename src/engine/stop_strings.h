// Stop strings over streamed text: fed the decoded text deltas of a generation, finds the
// first place where any stop string completes (even when it spans several deltas / tokens),
// and says which text is safe to emit now. Text that could still be the beginning of a stop
// string is held back until it either completes a stop string (then it is dropped) or can no
// longer match (then it is released).
//
// Which match wins: the stop string that *completes first* in the text stream; among those
// completing at the same byte, the longest (earliest start). This makes the result independent
// of how the text is split into deltas. The output is everything before the winning match's
// start (plus the stop string itself when include_stop is set), as OpenAI's `stop` behaves.
//
// Matching is byte-wise on UTF-8; stop strings start at a character boundary, so held-back
// text always splits the stream at character boundaries if the deltas do.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4 {

class StopStringMatcher {
 public:
  // Empty stop strings are ignored. Throws Error for more than kMaxStops strings.
  explicit StopStringMatcher(std::vector<std::string> stops, bool include_stop = false);

  struct Result {
    std::string emit;      // text safe to emit now (on a stop: the rest up to the stop string)
    bool stopped = false;  // a stop string completed; later feeds return nothing
    int stop_index = -1;   // which of the constructor's strings, when stopped
  };

  Result feed(std::string_view delta);
  // End of generation without a stop: releases the held-back text.
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::string& held() const { return held_; }
  bool empty() const { return stops_.empty(); }

  static constexpr size_t kMaxStops = 64;

 private:
  std::vector<std::string> stops_;
  std::vector<int> index_;  // position of stops_[i] in the constructor's list
  bool include_stop_;
  bool stopped_ = false;
  std::string held_;
  size_t max_len_ = 0;
};

}  // namespace dsv4

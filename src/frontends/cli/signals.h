// Ctrl-C during generation: while an InterruptGuard lives, SIGINT only raises a flag that the
// generation loop polls, so generation stops cleanly (and `dsv4 chat` returns to its prompt).
#pragma once
#include <csignal>

namespace dsv4::cli {

class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  bool requested() const;
  void clear();

 private:
  struct sigaction previous_ {};
};

}  // namespace dsv4::cli

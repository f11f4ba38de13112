#include "frontends/cli/signals.h"

#include <atomic>

namespace dsv4::cli {

namespace {
// A signal handler can only touch lock-free atomics; this flag is the one piece of process
// state the handler needs.
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }
}  // namespace

InterruptGuard::InterruptGuard() {
  g_interrupted.store(false);
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, &previous_);
}

InterruptGuard::~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }

bool InterruptGuard::requested() const { return g_interrupted.load(); }

void InterruptGuard::clear() { g_interrupted.store(false); }

}  // namespace dsv4::cli

// Shared helpers of the session file tests (tiny-a golden checkpoint, seq1).
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/session.h"
#include "model/safetensors.h"
#include "model/state_io.h"
#include "model/weights.h"

namespace dsv4::test {

inline std::shared_ptr<const ModelWeights> tiny_a() {
  static auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  return w;
}

// 131 tokens: crosses many CSA (ratio 4) and HCA (ratio 16) boundaries, wraps the 32-token window.
inline std::vector<int64_t> seq1() {
  static auto t = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors").read_i64("seq1");
  return t;
}

inline SessionOptions file_opts(Numerics nm, int64_t horizon = 8) {
  SessionOptions o;
  o.numerics = nm;
  o.rewind_horizon = horizon;
  o.prefill_chunk = 32;
  return o;
}

// A session that prefilled seq1[0, a), checkpointed, then stepped to seq1[0, b).
inline std::unique_ptr<Session> session_at(Numerics nm, int64_t a, int64_t b, int64_t horizon = 8) {
  auto s = std::make_unique<Session>(tiny_a(), file_opts(nm, horizon));
  const auto t = seq1();
  s->prefill(std::span<const int64_t>(t.data(), static_cast<size_t>(a)));
  s->checkpoint();
  for (int64_t i = a; i < b; ++i) s->step(t[static_cast<size_t>(i)]);
  return s;
}

inline bool bit_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace dsv4::test

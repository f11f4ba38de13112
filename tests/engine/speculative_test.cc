// Speculative decoding with the MTP block (engine/speculative.h):
//  * the acceptance rule gives exactly the target distribution for hand-made p, q;
//  * greedy decoding with speculation = greedy decoding without it (tiny-a golden checkpoint,
//    both numerics modes, draft lengths 1..4, through window wraps and compressed-entry
//    boundaries; generate() on a tiny chat model with penalties, logprobs and stop strings; a
//    JSON constraint through the hooks);
//  * sampling with speculation follows the target distribution (chi-square over seeds);
//  * rollback: verifying drafts and keeping a prefix (across compressed-entry boundaries)
//    leaves the main and MTP state of a session that never drafted (bit-identical logits);
//  * a step never commits more tokens than its budget (none when it is spent).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "backend/thread_pool.h"
#include "base/error.h"
#include "engine/constraint.h"
#include "engine/generate.h"
#include "engine/speculative.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "tiny_model.h"

using namespace dsv4;

namespace {

// One model thread: these models are tiny (pool barriers would dominate on a loaded machine),
// and every result is independent of the thread count (ops/linear_kernels.h).
struct OneThread : ::testing::Environment {
  void SetUp() override { set_default_thread_count(1); }
};
[[maybe_unused]] const auto* const g_one_thread = ::testing::AddGlobalTestEnvironment(new OneThread);

std::shared_ptr<const ModelWeights> tiny_a() {
  static auto w = load_model(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/checkpoint");
  return w;
}

std::vector<int64_t> seq1() {
  static auto t = TensorStore::open_file(std::string(DSV4_TEST_DATA_DIR) + "/tiny-a/tokens.safetensors").read_i64("seq1");
  return t;
}

std::vector<float> copy(std::span<const float> s) { return std::vector<float>(s.begin(), s.end()); }

bool bit_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

SessionOptions mtp_options(Numerics nm) {
  SessionOptions o;
  o.numerics = nm;
  o.mtp = true;
  return o;
}

// Plain decode loop on a session: sample, commit, step (as generate() does). Returns tokens.
std::vector<int32_t> plain_decode(Session& s, std::span<const int64_t> prompt, const SamplingParams& sp, int n,
                                  std::vector<SampleResult>* samples = nullptr) {
  Sampler sampler(s.vocab_size(), sp);
  TokenHistory hist(s.vocab_size());
  std::span<const float> logits = s.append(prompt);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const SampleResult r = sampler.sample(logits, &hist);
    out.push_back(r.token);
    hist.add_output(r.token);
    if (samples) samples->push_back(r);
    if (i + 1 < n) logits = s.step(r.token);
  }
  return out;
}

// The same with speculation.
// oracle: when given, drafts are replaced by these tokens (the plain run's), every third one
// made wrong, so drafts are kept and rejected at every offset.
std::vector<int32_t> spec_decode(Session& s, std::span<const int64_t> prompt, const SamplingParams& sp, int n, int draft,
                                 SpecStats* stats = nullptr, std::vector<SampleResult>* samples = nullptr,
                                 const std::vector<int32_t>* oracle = nullptr) {
  Sampler sampler(s.vocab_size(), sp);
  TokenHistory hist(s.vocab_size());
  std::span<const float> logits = s.append(prompt);
  SpeculativeDecoder dec(s, sampler, &hist, draft);
  std::vector<int32_t> out;
  SpecHooks hooks;
  hooks.commit = [&](const SampleResult& r) {
    out.push_back(r.token);
    hist.add_output(r.token);
    if (samples) samples->push_back(r);
    return static_cast<int>(out.size()) < n;
  };
  int64_t n_drafts = 0;
  if (oracle)
    hooks.override_draft = [&](int k, int32_t) -> int32_t {
      const size_t i = out.size() + static_cast<size_t>(k);  // the position this draft is for
      const int32_t tok = i < oracle->size() ? (*oracle)[i] : 0;
      return ++n_drafts % 3 == 0 ? (tok + 1) % static_cast<int32_t>(s.vocab_size()) : tok;
    };
  const SampleResult first = sampler.sample(logits, &hist);
  int32_t pending = first.token;
  bool running = hooks.commit(first);
  while (running) {
    const auto st = dec.step(pending, n - static_cast<int64_t>(out.size()), hooks);
    running = st.running;
    pending = st.pending;
  }
  if (stats) *stats = dec.stats();
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The rule, exactly: P(out = t) = q(t) a(t) + (sum_d q(d) (1 - a(d))) r(t) / sum r, with a(d)
// the measure of the uniforms u that keep draft d (found by bisection on spec_accept, which is
// monotone in u) and r the residual from spec_residual. Must equal p for any p, q.
TEST(SpecRule, AcceptanceGivesTheTargetDistribution) {
  const std::vector<std::pair<std::vector<float>, std::vector<float>>> cases = {
      {{0.1f, 0.2f, 0.3f, 0.4f}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{0.5f, 0.5f, 0.0f, 0.0f}, {0.0f, 0.25f, 0.25f, 0.5f}},    // q misses a token p needs
      {{0.0f, 0.0f, 1.0f, 0.0f}, {0.25f, 0.25f, 0.25f, 0.25f}},  // one-hot target (greedy)
      {{0.25f, 0.25f, 0.25f, 0.25f}, {0.0f, 1.0f, 0.0f, 0.0f}},  // one-hot draft
      {{0.3f, 0.3f, 0.2f, 0.2f}, {0.3f, 0.3f, 0.2f, 0.2f}},      // p == q: always kept
      {{0.05f, 0.6f, 0.05f, 0.3f}, {0.2f, 0.5f, 0.1f, 0.2f}},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& [p, q] = cases[c];
    const size_t V = p.size();
    std::vector<double> a(V, 0.0);
    for (size_t d = 0; d < V; ++d) {
      if (q[d] == 0.0f) continue;
      if (spec_accept(p[d], q[d], std::nextafter(1.0, 0.0))) {
        a[d] = 1.0;
        continue;
      }
      if (!spec_accept(p[d], q[d], 0.0)) continue;
      double lo = 0.0, hi = 1.0;  // accept(lo), !accept(hi)
      for (int it = 0; it < 80; ++it) {
        const double mid = 0.5 * (lo + hi);
        (spec_accept(p[d], q[d], mid) ? lo : hi) = mid;
      }
      a[d] = lo;
    }
    std::vector<float> r(V);
    const double rsum = spec_residual(p, q, r);
    double reject = 0.0;
    for (size_t d = 0; d < V; ++d) reject += q[d] * (1.0 - a[d]);
    for (size_t t = 0; t < V; ++t) {
      const double out = q[t] * a[t] + reject * r[t] / rsum;
      EXPECT_NEAR(out, p[t], 1e-6) << "case " << c << " token " << t;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Greedy: exactly the plain tokens, logits through the verify rows (same bits), both modes,
// every draft length, 50 tokens past a window wrap (window 32) and compressed-entry
// boundaries (ratios 4 and 16).
void greedy_same_as_plain(Numerics nm) {
  const auto t = seq1();
  const std::vector<int64_t> prompt(t.begin(), t.begin() + 13);
  SamplingParams sp;
  sp.temperature = 0.0f;
  sp.logprobs = true;
  sp.top_logprobs = 3;
  {
    Session plain(tiny_a(), SessionOptions{.numerics = nm});
    std::vector<SampleResult> ps;
    const auto want = plain_decode(plain, prompt, sp, 50, &ps);
    for (int draft = 1; draft <= kMaxDraft; ++draft) {
      Session s(tiny_a(), mtp_options(nm));
      SpecStats st;
      std::vector<SampleResult> ss;
      const auto got = spec_decode(s, prompt, sp, 50, draft, &st, &ss);
      ASSERT_EQ(got, want) << "draft " << draft;
      for (size_t i = 0; i < ps.size(); ++i) {
        ASSERT_EQ(ss[i].logprob, ps[i].logprob) << "token " << i;
        ASSERT_EQ(ss[i].n_top, ps[i].n_top);
        for (int k = 0; k < ps[i].n_top; ++k) ASSERT_EQ(ss[i].top[k].token, ps[i].top[k].token);
      }
      EXPECT_GT(st.steps, 0);
      EXPECT_EQ(st.drafted > 0, true);
      // Oracle drafts: most kept, some rejected, same tokens.
      Session so(tiny_a(), mtp_options(nm));
      SpecStats sto;
      std::vector<SampleResult> sso;
      ASSERT_EQ(spec_decode(so, prompt, sp, 50, draft, &sto, &sso, &want), want) << "oracle drafts, draft " << draft;
      for (size_t i = 0; i < ps.size(); ++i) ASSERT_EQ(sso[i].logprob, ps[i].logprob) << "oracle, token " << i;
      EXPECT_GT(sto.accepted, 0);
      EXPECT_LT(sto.accepted, sto.drafted);
      std::printf("numerics %d draft %d: %lld steps, %lld drafted, %lld accepted\n", static_cast<int>(nm), draft,
                  static_cast<long long>(st.steps), static_cast<long long>(st.drafted), static_cast<long long>(st.accepted));
    }
  }
}
TEST(SpecGreedy, SameTokensAsPlainDecodeReference) { greedy_same_as_plain(Numerics::kReference); }
TEST(SpecGreedy, SameTokensAsPlainDecodePrecise) { greedy_same_as_plain(Numerics::kPrecise); }

// With a repetition penalty the history must see exactly the plain tokens in order.
TEST(SpecGreedy, PenaltiesSeeThePlainTokens) {
  const auto t = seq1();
  const std::vector<int64_t> prompt(t.begin(), t.begin() + 30);
  SamplingParams sp;
  sp.temperature = 0.0f;
  sp.frequency_penalty = 0.7f;
  sp.presence_penalty = 0.3f;
  Session plain(tiny_a(), {});
  const auto want = plain_decode(plain, prompt, sp, 60);
  Session s(tiny_a(), mtp_options(Numerics::kReference));
  EXPECT_EQ(spec_decode(s, prompt, sp, 60, 3), want);
  Session so(tiny_a(), mtp_options(Numerics::kReference));
  EXPECT_EQ(spec_decode(so, prompt, sp, 60, 3, nullptr, nullptr, &want), want);
}

// ---------------------------------------------------------------------------------------------
// Rollback: verify the pending token + 3 arbitrary drafts, keep 1..4 of them, continue with the
// true tokens: every later logits row and MTP draft equals that of a session that appended the
// same tokens one at a time (no drafts). Cuts at every position 8..40 cross CSA (4) and HCA
// (16) entry emissions and the window (32).
void rollback_equals_no_drafts(Numerics nm) {
  const auto t = seq1();
  const int64_t V = tiny_a()->config.vocab_size;
  {
    Session ref(tiny_a(), mtp_options(nm));
    std::vector<std::vector<float>> ref_logits, ref_mtp;  // after k tokens; MTP draft for token k
    ref.append(std::span<const int64_t>(t.data(), 1));
    ref_logits.resize(2);
    ref_mtp.resize(2);
    for (int64_t k = 1; k < 50; ++k) {
      ref_mtp.push_back(copy(ref.draft_first(t[static_cast<size_t>(k)])));
      ref.drop_drafts();
      ref_logits.push_back(copy(ref.step(t[static_cast<size_t>(k)])));
    }
    // ref_logits[k + 1]: logits after tokens 0..k; ref_mtp[k + 1]: draft_first(t[k]) at size k.
    for (int64_t P = 8; P <= 40; ++P) {
      for (int64_t kept = 1; kept <= 4; ++kept) {
        Session s(tiny_a(), mtp_options(nm));
        s.append(std::span<const int64_t>(t.data(), static_cast<size_t>(P)));
        // Drafts: true tokens for the kept part, then wrong ones.
        std::vector<int64_t> v = {t[static_cast<size_t>(P)]};
        ASSERT_FALSE(s.draft_first(v[0]).empty());
        for (int64_t j = 1; j < 4; ++j) {
          const int64_t tok = j < kept ? t[static_cast<size_t>(P + j)] : (t[static_cast<size_t>(P + j)] + 7) % V;
          s.draft_next(v.back());
          v.push_back(tok);
        }
        std::span<const float> rows = s.verify(v);
        for (int64_t j = 0; j < 4; ++j)
          if (j < kept) {
            ASSERT_TRUE(bit_equal(rows.subspan(static_cast<size_t>(j * V), static_cast<size_t>(V)), ref_logits[P + j + 1]));
          }
        s.commit_verified(kept);
        ASSERT_EQ(s.size(), P + kept);
        ASSERT_TRUE(bit_equal(s.last_logits(), ref_logits[P + kept])) << "P " << P << " kept " << kept;
        // Continue with the true tokens: logits and MTP drafts as if never drafted.
        for (int64_t k = P + kept; k < std::min<int64_t>(P + kept + 4, 50); ++k) {
          std::span<const float> m = s.draft_first(t[static_cast<size_t>(k)]);
          ASSERT_TRUE(bit_equal(m, ref_mtp[k + 1])) << "MTP, P " << P << " kept " << kept << " at " << k;
          s.drop_drafts();
          ASSERT_TRUE(bit_equal(s.step(t[static_cast<size_t>(k)]), ref_logits[k + 1])) << "P " << P << " kept " << kept << " at " << k;
        }
      }
    }
  }
}
TEST(SpecRollback, KeepingAPrefixEqualsNeverHavingDraftedReference) { rollback_equals_no_drafts(Numerics::kReference); }
TEST(SpecRollback, KeepingAPrefixEqualsNeverHavingDraftedPrecise) { rollback_equals_no_drafts(Numerics::kPrecise); }

// ---------------------------------------------------------------------------------------------
// generate(): speculation changes nothing a user sees in greedy mode (tiny chat model, real
// tokenizer): tokens, text, finish reason, logprobs; stop strings that end inside a verified
// batch; max_tokens; penalties.
namespace {
struct ChatFixture {
  std::shared_ptr<const ModelWeights> w;
  std::unique_ptr<Tokenizer> tok;
};
const ChatFixture& chat_fx() {
  static ChatFixture f = [] {
    ChatFixture x;
    const std::string dir = test::tiny_chat_model_dir();
    x.w = load_model(dir);
    x.tok = std::make_unique<Tokenizer>(Tokenizer::load(dir + "/tokenizer.json"));
    return x;
  }();
  return f;
}
std::vector<int64_t> chat_prompt() {
  chat::EncodeOptions eo;
  eo.thinking_mode = chat::ThinkingMode::Chat;
  const std::string p =
      chat::encode_messages(chat::Json::array({chat::Json{{"role", "user"}, {"content", "Write a short poem about rivers."}}}), eo);
  auto ids = chat_fx().tok->encode(p, true);
  return std::vector<int64_t>(ids.begin(), ids.end());
}
}  // namespace

TEST(SpecGenerate, GreedySameResultWithStopStringsAndLogprobs) {
  const auto prompt = chat_prompt();
  GenerateParams gp;
  gp.sampling.temperature = 0.0f;
  gp.sampling.repetition_penalty = 1.1f;
  gp.sampling.top_logprobs = 2;
  gp.max_tokens = 30;
  gp.mode = chat::ThinkingMode::Chat;
  Session plain(chat_fx().w, {});
  const GenerateResult want = generate(plain, *chat_fx().tok, prompt, gp);
  ASSERT_EQ(want.tokens.size(), 30u);
  // A stop string from the middle of the plain output.
  ASSERT_GT(want.text.size(), 24u);
  const std::string stop = want.text.substr(16, 4);
  GenerateParams gs = gp;
  gs.stop = {stop};
  Session plain2(chat_fx().w, {});
  const GenerateResult want_stop = generate(plain2, *chat_fx().tok, prompt, gs);
  ASSERT_EQ(want_stop.finish, FinishReason::kStop);
  for (int draft : {1, kMaxDraft}) {
    for (const GenerateParams* p : {&gp, &gs}) {
      GenerateParams q = *p;
      q.spec_draft = draft;
      Session s(chat_fx().w, SessionOptions{.mtp = true});
      const GenerateResult got = generate(s, *chat_fx().tok, prompt, q);
      const GenerateResult& w = p == &gp ? want : want_stop;
      EXPECT_EQ(got.tokens, w.tokens) << "draft " << draft;
      EXPECT_EQ(got.text, w.text);
      EXPECT_EQ(got.finish, w.finish);
      ASSERT_EQ(got.samples.size(), w.samples.size());
      for (size_t i = 0; i < w.samples.size(); ++i) {
        EXPECT_EQ(got.samples[i].logprob, w.samples[i].logprob);
        EXPECT_EQ(got.samples[i].top[0].token, w.samples[i].top[0].token);
      }
      EXPECT_GT(got.stats.drafted_tokens, 0);
    }
  }
}

// A JSON constraint applied through the hooks (as the server applies it) sees the plain tokens.
TEST(SpecGenerate, JsonConstraintSameTokens) {
  const auto& fx = chat_fx();
  const auto prompt = chat_prompt();
  auto table = TokenTable::build(*fx.tok, static_cast<int32_t>(fx.w->config.eos_token_id), fx.w->config.vocab_size);
  const json_py::Json schema = json_py::loads(R"({"type":"object","properties":{"name":{"type":"string"},"n":{"type":"integer"}}})");
  SamplingParams sp;
  sp.temperature = 0.0f;
  const int n = 20;
  std::vector<float> masked(static_cast<size_t>(fx.w->config.vocab_size));
  auto masker = [&](JsonConstraint& c, std::span<const float> raw) -> std::span<const float> {
    std::copy(raw.begin(), raw.end(), masked.begin());
    if (c.mask(masked) == 0) return {};
    return masked;
  };
  // Plain.
  std::vector<int32_t> want;
  {
    JsonConstraint c(table, schema);
    Session s(fx.w, {});
    Sampler sampler(s.vocab_size(), sp);
    TokenHistory hist(s.vocab_size());
    std::span<const float> logits = s.append(prompt);
    for (int i = 0; i < n; ++i) {
      std::span<const float> adj = masker(c, logits);
      if (adj.empty()) break;
      const SampleResult r = sampler.sample(adj, &hist);
      want.push_back(r.token);
      c.accept(r.token);
      hist.add_output(r.token);
      logits = s.step(r.token);
    }
  }
  ASSERT_GT(want.size(), 5u);
  for (bool oracle : {false, true}) {
    const int draft = 3;
    JsonConstraint c(table, schema);
    Session s(fx.w, SessionOptions{.mtp = true});
    Sampler sampler(s.vocab_size(), sp);
    TokenHistory hist(s.vocab_size());
    std::span<const float> logits = s.append(prompt);
    SpeculativeDecoder dec(s, sampler, &hist, draft);
    std::vector<int32_t> got;
    SpecHooks hooks;
    hooks.prepare = [&](std::span<const float> raw) { return masker(c, raw); };
    int64_t n_drafts = 0;
    if (oracle) {
      hooks.override_draft = [&](int k, int32_t) -> int32_t {
        const size_t i = got.size() + static_cast<size_t>(k);
        const int32_t tok = i < want.size() ? want[i] : 0;
        return ++n_drafts % 3 == 0 ? (tok + 1) % static_cast<int32_t>(s.vocab_size()) : tok;
      };
    }
    hooks.commit = [&](const SampleResult& r) {
      got.push_back(r.token);
      c.accept(r.token);
      hist.add_output(r.token);
      return static_cast<int>(got.size()) < n;
    };
    std::span<const float> adj = masker(c, logits);
    ASSERT_FALSE(adj.empty());
    const SampleResult first = sampler.sample(adj, &hist);
    int32_t pending = first.token;
    bool running = hooks.commit(first);
    while (running) {
      const auto st = dec.step(pending, n - static_cast<int64_t>(got.size()), hooks);
      running = st.running;
      pending = st.pending;
    }
    EXPECT_EQ(got, want) << "oracle drafts " << oracle;
    if (oracle) {
      EXPECT_GT(dec.stats().accepted, 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling: the tokens of the first two positions decided by speculation (t2, t3 after a fixed
// pending token t1) follow the target distribution. Exact target marginals from the model
// (p(t2), sum_t2 p(t2) p(t3 | t2)); 1500 seeds; Pearson chi-square over bins of >= 5% expected
// mass, false-alarm rate 0.001 per test. Temperature 2 makes p and q overlap,
// so drafts are both kept and rejected (checked).
TEST(SpecSampling, ChiSquareAgainstTheTargetDistribution) {
  const auto t = seq1();
  const std::vector<int64_t> prompt(t.begin(), t.begin() + 18);
  const int64_t t1 = t[18];
  const int64_t V = tiny_a()->config.vocab_size;
  SamplingParams sp;
  sp.temperature = 2.0f;
  // Exact marginals of t2 and t3.
  std::vector<double> p2(static_cast<size_t>(V)), p3(static_cast<size_t>(V), 0.0), q2(static_cast<size_t>(V));
  {
    // The first draft's distribution (MTP block after the prompt, token t1).
    Session m(tiny_a(), mtp_options(Numerics::kReference));
    m.append(prompt);
    Sampler sampler(V, sp);
    const auto dq = sampler.distribution(m.draft_first(t1), nullptr);
    for (int64_t a = 0; a < V; ++a) q2[static_cast<size_t>(a)] = dq[static_cast<size_t>(a)];
  }
  {
    Session s(tiny_a(), {});
    Sampler sampler(V, sp);
    std::vector<int64_t> pre = prompt;
    pre.push_back(t1);
    const auto l2 = copy(s.append(pre));
    const auto d2 = copy(sampler.distribution(l2, nullptr));
    for (int64_t a = 0; a < V; ++a) p2[static_cast<size_t>(a)] = d2[static_cast<size_t>(a)];
    for (int64_t a = 0; a < V; ++a) {
      if (d2[static_cast<size_t>(a)] == 0.0f) continue;
      const auto l3 = copy(s.step(a));
      const auto d3 = sampler.distribution(l3, nullptr);
      for (int64_t b = 0; b < V; ++b) p3[static_cast<size_t>(b)] += p2[static_cast<size_t>(a)] * d3[static_cast<size_t>(b)];
      s.truncate(s.size() - 1);
    }
  }
  // Samples with speculation (draft 2), one session rewound to the prompt each time.
  const int S = 1500;
  std::vector<int64_t> c2(static_cast<size_t>(V), 0), c3(static_cast<size_t>(V), 0);
  Session s(tiny_a(), mtp_options(Numerics::kReference));
  s.append(prompt);
  s.checkpoint();
  SpecStats total;
  for (int seed = 0; seed < S; ++seed) {
    s.truncate(static_cast<int64_t>(prompt.size()));
    SamplingParams p = sp;
    p.seed = 1000 + static_cast<uint64_t>(seed);
    Sampler sampler(V, p);
    SpeculativeDecoder dec(s, sampler, nullptr, 2);
    std::vector<int32_t> got;
    SpecHooks hooks;
    hooks.commit = [&](const SampleResult& r) {
      got.push_back(r.token);
      return got.size() < 2;
    };
    int32_t pending = static_cast<int32_t>(t1);
    bool running = true;
    while (running) {
      // Room for 2 drafts: t3 is then decided by the chained draft when t2's draft is kept.
      const auto st = dec.step(pending, 3, hooks);
      running = st.running;
      pending = st.pending;
    }
    ASSERT_EQ(got.size(), 2u);
    ++c2[static_cast<size_t>(got[0])];
    ++c3[static_cast<size_t>(got[1])];
    total.drafted += dec.stats().drafted;
    total.accepted += dec.stats().accepted;
  }
  EXPECT_GT(total.accepted, 0);
  EXPECT_LT(total.accepted, total.drafted);
  // Bins of consecutive tokens in `order` with >= 5% expected mass each (the rest joins the
  // last bin).
  auto chi2 = [&](const std::vector<double>& p, const std::vector<int64_t>& c, const std::vector<int32_t>& order, int* bins) {
    double stat = 0.0, mass = 0.0, done = 0.0;
    int64_t count = 0;
    *bins = 0;
    for (int64_t k = 0; k < V; ++k) {
      const size_t i = static_cast<size_t>(order[static_cast<size_t>(k)]);
      mass += p[i];
      done += p[i];
      count += c[i];
      if (p[i] == 0.0) {
        EXPECT_EQ(c[i], 0) << "token of zero probability drawn";
      }
      if ((mass >= 0.05 && 1.0 - done >= 0.05) || k == V - 1) {
        const double e = mass * S;
        stat += (count - e) * (count - e) / e;
        ++*bins;
        mass = 0.0;
        count = 0;
      }
    }
    return stat;
  };
  // Upper 0.001 quantile of chi-square (Wilson-Hilferty; accurate to ~1% at these df).
  auto crit = [](int df) {
    const double z = 3.0902, k = df;
    const double a = 1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k));
    return k * a * a * a;
  };
  int b2 = 0, b3 = 0;
  // t2: tokens ordered by q / p (a rule that keeps drafts too often or too rarely moves mass
  // between the ends); t3: by id.
  std::vector<int32_t> by_ratio(static_cast<size_t>(V)), by_id(static_cast<size_t>(V));
  for (int32_t i = 0; i < V; ++i) by_ratio[static_cast<size_t>(i)] = by_id[static_cast<size_t>(i)] = i;
  std::stable_sort(by_ratio.begin(), by_ratio.end(), [&](int32_t a, int32_t b) {
    return q2[static_cast<size_t>(a)] * p2[static_cast<size_t>(b)] < q2[static_cast<size_t>(b)] * p2[static_cast<size_t>(a)];
  });
  const double x2 = chi2(p2, c2, by_ratio, &b2), x3 = chi2(p3, c3, by_id, &b3);
  std::printf("chi2 t2 %.2f (%d bins, crit %.2f), t3 %.2f (%d bins, crit %.2f), acceptance %.3f\n", x2, b2, crit(b2 - 1), x3, b3,
              crit(b3 - 1), static_cast<double>(total.accepted) / static_cast<double>(total.drafted));
  EXPECT_LT(x2, crit(b2 - 1));
  EXPECT_LT(x3, crit(b3 - 1));
}

// ---------------------------------------------------------------------------------------------
// The budget: a step commits at most max_new tokens, whatever the drafts and the hooks say (every
// draft right, a commit hook that never ends the generation), and with no budget left it
// commits nothing and leaves the session as it was (a server job's first token comes from the
// prefill logits, so a step can be asked for with max_tokens already reached).
TEST(SpecBudget, AStepNeverCommitsPastMaxNew) {
  const auto t = seq1();
  const std::vector<int64_t> prompt(t.begin(), t.begin() + 13);
  SamplingParams sp;
  sp.temperature = 0.0f;
  Session plain(tiny_a(), SessionOptions{});
  const auto want = plain_decode(plain, prompt, sp, 2 + kMaxDraft);
  for (int draft = 1; draft <= kMaxDraft; ++draft) {
    for (int64_t max_new = -1; max_new <= draft + 2; ++max_new) {
      Session s(tiny_a(), mtp_options(Numerics::kReference));
      Sampler sampler(s.vocab_size(), sp);
      TokenHistory hist(s.vocab_size());
      const SampleResult first = sampler.sample(s.append(prompt), &hist);
      ASSERT_EQ(first.token, want[0]);
      hist.add_output(first.token);
      SpeculativeDecoder dec(s, sampler, &hist, draft);
      std::vector<int32_t> got;
      SpecHooks hooks;
      hooks.commit = [&](const SampleResult& r) {
        got.push_back(r.token);
        hist.add_output(r.token);
        return true;
      };
      hooks.override_draft = [&](int k, int32_t) { return want[static_cast<size_t>(1 + k)]; };
      const SpeculativeDecoder::StepResult st = dec.step(first.token, max_new, hooks);
      const int64_t n = std::clamp<int64_t>(max_new, 0, draft + 1);
      ASSERT_EQ(static_cast<int64_t>(got.size()), n) << "draft " << draft << " max_new " << max_new;
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + 1)) << "draft " << draft << " max_new " << max_new;
      if (n == 0) {
        EXPECT_FALSE(st.running) << "draft " << draft << " max_new " << max_new;
        EXPECT_EQ(s.size(), static_cast<int64_t>(prompt.size())) << "draft " << draft << " max_new " << max_new;
      } else {
        EXPECT_TRUE(st.running);
        EXPECT_EQ(st.pending, got.back());
      }
    }
  }
}

TEST(SpecErrors, NeedsAnMtpSessionAndAHorizon) {
  Session plain(tiny_a(), {});
  Sampler sampler(plain.vocab_size(), {});
  EXPECT_THROW(SpeculativeDecoder(plain, sampler, nullptr, 2), Error);
  SessionOptions o = mtp_options(Numerics::kReference);
  o.rewind_horizon = 1;
  Session s(tiny_a(), o);
  EXPECT_THROW(SpeculativeDecoder(s, sampler, nullptr, 2), Error);
  Session ok(tiny_a(), mtp_options(Numerics::kReference));
  EXPECT_THROW(SpeculativeDecoder(ok, sampler, nullptr, 0), Error);
  EXPECT_THROW(SpeculativeDecoder(ok, sampler, nullptr, kMaxDraft + 1), Error);
  // The MTP block's own rewind: within [mtp_pos - horizon, mtp_pos] only.
  SequenceState st(tiny_a()->config, Numerics::kReference, 2);
  st.mtp_pos = 5;
  EXPECT_THROW(st.truncate_mtp(6), Error);
  EXPECT_THROW(st.truncate_mtp(2), Error);
  EXPECT_NO_THROW(st.truncate_mtp(3));
  EXPECT_EQ(st.mtp_pos, 3);
  // Session: verify / commit out of order.
  EXPECT_THROW(ok.commit_verified(1), Error);
  EXPECT_THROW(ok.draft_next(3), Error);
  const std::vector<int64_t> two = {1, 2};
  ok.append(two);
  ok.verify(two);
  EXPECT_THROW(ok.verify(two), Error);
  EXPECT_THROW(ok.commit_verified(3), Error);
  ok.commit_verified(2);
  EXPECT_EQ(ok.size(), 4);
}

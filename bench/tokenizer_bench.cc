// Tokenizer encode throughput, single thread, against HF tokenizers on the same text.
//
//   tokenizer_bench [--mb N] [--repeats R] [--no-oracle]
//
// Builds N MB (default 4) of mixed text from the golden tokenizer cases (prose, code, JSON,
// CJK, other scripts, emoji, whitespace, special tokens), shuffled with a fixed seed into
// documents of a few KB, encodes the documents one after another R times (best time counts;
// the word caches of both are warm after the first run), then has the HF oracle
// (tests/oracle/hf_tokenizers.js: Rust tokenizers through Node) encode the same documents the
// same way, and prints both throughputs and their ratio. Documents rather than one huge string
// because that is how prompts arrive, and HF slows down badly on multi-MB single inputs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"

namespace {

std::vector<std::string> golden_texts(const std::string& path) {
  std::string all = dsv4::read_file(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {  // split on '\n' only: texts contain U+2028 etc.
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    if (nl > pos) {
      auto j = nlohmann::json::parse(all.substr(pos, nl - pos));
      if (j["kind"] == "encode") out.push_back(j["text"].get<std::string>());
    }
    pos = nl + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double mb = 4;
  int repeats = 3;
  bool oracle = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--mb") && i + 1 < argc) mb = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-oracle")) oracle = false;
    else {
      std::fprintf(stderr, "usage: tokenizer_bench [--mb N] [--repeats R] [--no-oracle]\n");
      return 2;
    }
  }
  try {
    const std::string src = DSV4_SOURCE_DIR;
    const std::string tok_path = src + "/assets/deepseek-v4-tokenizer.json.gz";
    auto t0 = std::chrono::steady_clock::now();
    dsv4::Tokenizer tok = dsv4::Tokenizer::load(tok_path);
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::vector<std::string> texts = golden_texts(src + "/tests/data/tokenizer/cases.jsonl");
    std::mt19937_64 rng(42);
    std::vector<std::string> docs;
    size_t total = 0;
    const size_t target = size_t(mb * 1e6);
    while (total < target) {
      std::string doc;
      int parts = 1 + int(rng() % 8);
      for (int p = 0; p < parts; ++p) {
        doc += texts[rng() % texts.size()];
        doc += (rng() % 3 == 0) ? "\n\n" : " ";
      }
      total += doc.size();
      docs.push_back(std::move(doc));
    }

    double best = 1e30;
    size_t n_ids = 0;
    for (int r = 0; r < repeats; ++r) {
      auto a = std::chrono::steady_clock::now();
      n_ids = 0;
      for (const std::string& d : docs) n_ids += tok.encode(d).size();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
      best = std::min(best, s);
    }
    double ours = total / 1e6 / best;
    std::printf("tokenizer load: %.2f s\n", load_s);
    std::printf("text: %zu documents, %zu bytes, %zu ids\n", docs.size(), total, n_ids);
    std::printf("dsv4 encode:           %8.2f MB/s (best of %d, %.3f s)\n", ours, repeats, best);
    if (!oracle) return 0;

    const std::string text_path = "/tmp/dsv4_tokenizer_bench.jsonl";
    std::string jsonl;
    for (const std::string& d : docs) jsonl += nlohmann::json(d).dump() + "\n";
    dsv4::write_file_atomic(text_path, jsonl);
    const std::string out_path = "/tmp/dsv4_tokenizer_bench.json";
    std::string cmd = "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node '" + src + "/tests/oracle/hf_tokenizers.js' bench '" +
                      tok_path + "' '" + text_path + "' " + std::to_string(repeats) + " > '" + out_path + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "HF oracle failed (install it with `bash scripts/setup.sh`): %s\n", cmd.c_str());
      return 1;
    }
    auto j = nlohmann::json::parse(dsv4::read_file(out_path));
    double hf = j["mb_per_s"].get<double>();
    std::printf("HF tokenizers encode:  %8.2f MB/s (best of %d, %.3f s, %lld ids)\n", hf, repeats,
                j["seconds"].get<double>(), (long long)j["ids"].get<int64_t>());
    std::printf("ratio dsv4 / HF: %.2fx\n", ours / hf);
    if (j["ids"].get<int64_t>() != int64_t(n_ids)) {
      std::fprintf(stderr, "id counts differ: dsv4 %zu, HF %lld\n", n_ids, (long long)j["ids"].get<int64_t>());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}

// A trained tokenizer.json (dsv4 tokenizer train) in Hugging Face `tokenizers` itself (the Rust
// library through the Node binding @anush008/tokenizers, installed in tests/oracle by
// scripts/setup.sh): HF must load the file and give the same ids as dsv4 for varied strings, in
// both parse_special modes, and decode them to the same text. A missing node / package fails
// (never skips): the comparison is the point of this test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/file.h"
#include "text/tokenizer.h"
#include "text/tokenizer_train.h"
#include "tokenizer_train_util.h"

namespace dsv4 {
namespace {

const std::string kTemplate = std::string(DSV4_ASSETS_DIR) + "/deepseek-v4-tokenizer.json.gz";
const std::string kOracle = std::string(DSV4_ORACLE_DIR) + "/hf_tokenizers.js";

std::string scratch(const std::string& name) {
  return ::testing::TempDir() + "/dsv4_" + std::to_string(getpid()) + "_" + name;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::string all = read_file(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    if (nl > pos) out.push_back(all.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

std::vector<std::string> oracle(const std::string& mode, const std::string& tok, const std::string& in) {
  std::string in_path = scratch("train_oracle_in.jsonl"), out_path = scratch("train_oracle_out.jsonl");
  write_file_atomic(in_path, in);
  std::string cmd = "node '" + kOracle + "' " + mode + " '" + tok + "' '" + in_path + "' '" + out_path + "'";
  int rc = std::system(cmd.c_str());
  std::vector<std::string> lines;
  if (rc == 0) lines = read_lines(out_path);
  std::remove(in_path.c_str());
  std::remove(out_path.c_str());
  EXPECT_EQ(rc, 0) << "the HF tokenizers oracle did not run (" << cmd
                   << "). Install it with `bash scripts/setup.sh --with-test-oracles`.";
  return lines;
}

TEST(TokenizerTrainOracle, HFLoadsTheTrainedFileAndEncodesIdentically) {
  BpeTrainer tr(kTemplate);
  for (const std::string& d : train_test::corpus(11, 300)) tr.add_text(d);
  BpeTrainResult r = tr.train(256 + 1283 + 600);
  ASSERT_EQ(r.merges, 600);
  std::string path = scratch("train_oracle_tokenizer.json");
  write_file_atomic(path, r.json);
  Tokenizer t = Tokenizer::load(path);

  std::vector<std::string> texts = train_test::probe_strings();
  for (const std::string& d : train_test::corpus(12, 60)) texts.push_back(d);  // unseen documents
  std::string in;
  for (size_t i = 0; i < 2 * texts.size(); ++i)
    in += nlohmann::json{{"text", texts[i / 2]}, {"parse_special", i % 2 == 0}}.dump() + "\n";
  std::vector<std::string> lines = oracle("encode", path, in);
  ASSERT_EQ(lines.size(), 2 * texts.size());
  int diffs = 0;
  std::string dec_in;
  std::vector<std::vector<int32_t>> all_ids;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<int32_t> want = nlohmann::json::parse(lines[i]).get<std::vector<int32_t>>();
    std::vector<int32_t> got = t.encode(texts[i / 2], i % 2 == 0);
    if (got != want && ++diffs <= 5)
      ADD_FAILURE() << nlohmann::json(texts[i / 2]).dump() << " parse_special=" << (i % 2 == 0) << "\n want "
                    << nlohmann::json(want).dump() << "\n got  " << nlohmann::json(got).dump();
    dec_in += nlohmann::json{{"ids", got}, {"skip_special", i % 4 == 0}}.dump() + "\n";
    all_ids.push_back(std::move(got));
  }
  EXPECT_EQ(diffs, 0) << "of " << lines.size() << " encodings";

  std::vector<std::string> dec = oracle("decode", path, dec_in);
  ASSERT_EQ(dec.size(), all_ids.size());
  for (size_t i = 0; i < dec.size(); ++i)
    EXPECT_EQ(nlohmann::json::parse(dec[i]).get<std::string>(), t.decode(all_ids[i], i % 4 == 0)) << i;
  std::remove(path.c_str());
}

}  // namespace
}  // namespace dsv4

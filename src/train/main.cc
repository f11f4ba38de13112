// dsv4-train: the trainer's executable (`dsv4 train ...` runs it). Kept apart from the dsv4
// binary so that only this program links libtorch.
#include <CLI/CLI.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/file.h"
#include "text/tokenizer.h"
#include "train/post_run.h"
#include "train/run.h"
#include "train/sft_data.h"
#include "train/token_data.h"

namespace {

int cmd_data_prepare(int argc, char** argv) {
  CLI::App app{"dsv4 train data: tokenise text files into token shards (manifest.json + *.u32)"};
  std::string tokenizer, out;
  std::vector<std::string> inputs;
  double val_fraction = 0.05;
  int64_t vocab = 0, eos = -1;
  bool special = false;
  app.add_option("--tokenizer", tokenizer, "tokenizer.json")->required();
  app.add_option("--out", out, "output data directory")->required();
  app.add_flag("--special-tokens", special,
               "match the tokenizer's added tokens (<｜User｜>, <think>, ...) in the text, as rendered chat "
               "transcripts need (`dsv4 tasks write --text`); default: everything is plain text");
  app.add_option("--val-fraction", val_fraction, "fraction of the documents held out (default 0.05)");
  app.add_option("--vocab-size", vocab, "vocabulary size of the model (default: the tokenizer's)");
  app.add_option("--eos", eos, "document separator id (default: the tokenizer's EOS)");
  app.add_option("inputs", inputs, "*.txt (one document per file) or *.jsonl ({\"text\": ...} per line)")->required();
  CLI11_PARSE(app, argc, argv);
  const dsv4::Tokenizer tok = dsv4::Tokenizer::load(tokenizer);
  if (vocab <= 0) vocab = tok.vocab_size();
  if (eos < 0) eos = tok.token_id("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence" "\xef\xbd\x9c>");  // <｜end▁of▁sentence｜>
  if (eos < 0) throw dsv4::Error(tokenizer + ": no <｜end▁of▁sentence｜> token; give --eos");
  std::vector<std::vector<int64_t>> docs;
  auto add = [&](const std::string& text) {
    std::vector<int32_t> ids = tok.encode(text, special);
    docs.emplace_back(ids.begin(), ids.end());
  };
  for (const std::string& in : inputs) {
    if (in.size() > 6 && in.substr(in.size() - 6) == ".jsonl") {
      std::ifstream f(in);
      if (!f) throw dsv4::Error(in + ": cannot open");
      int64_t line_no = 0;
      for (std::string line; std::getline(f, line);) {
        ++line_no;
        if (line.empty()) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          throw dsv4::Error(in + ":" + std::to_string(line_no) + ": invalid JSON: " + e.what());
        }
        if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
          throw dsv4::Error(in + ":" + std::to_string(line_no) + ": expected an object with a string field text");
        add(j["text"].get<std::string>());
      }
    } else {
      add(dsv4::read_file(in));
    }
  }
  dsv4::train::write_token_data(out, docs, vocab, eos, val_fraction);
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.size()) + 1;
  std::printf("%zu documents, %lld tokens -> %s\n", docs.size(), static_cast<long long>(n), out.c_str());
  return 0;
}

int cmd_data_sft(int argc, char** argv) {
  CLI::App app{"dsv4 train data sft: task JSONL -> chat-encoded SFT examples with loss masks (token data version 2)"};
  std::string tokenizer, out, modes = "non-think,think-high,think-max";
  std::vector<std::string> tasks;
  double val_fraction = 0.05;
  int64_t vocab = 0;
  app.add_option("--tasks", tasks, "task files (docs/tasks-format.md)")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer.json")->required();
  app.add_option("--modes", modes, "comma-separated: non-think, think-high, think-max (default: all three)");
  app.add_option("--out", out, "output data directory")->required();
  app.add_option("--val-fraction", val_fraction, "fraction of the examples held out (default 0.05)");
  app.add_option("--vocab-size", vocab, "vocabulary size of the model (default: the tokenizer's)");
  CLI11_PARSE(app, argc, argv);
  const dsv4::Tokenizer tok = dsv4::Tokenizer::load(tokenizer);
  if (vocab <= 0) vocab = tok.vocab_size();
  std::vector<std::string> mode_list;
  for (size_t a = 0; a <= modes.size();) {
    size_t b = modes.find(',', a);
    if (b == std::string::npos) b = modes.size();
    if (b > a) mode_list.push_back(modes.substr(a, b - a));
    a = b + 1;
  }
  const dsv4::train::SftDataStats st = dsv4::train::prepare_sft_data(tasks, tok, mode_list, out, val_fraction, vocab);
  std::printf("%lld tasks -> %lld examples (%lld without a target skipped), %lld tokens, %lld target tokens -> %s\n",
              static_cast<long long>(st.tasks), static_cast<long long>(st.examples), static_cast<long long>(st.skipped),
              static_cast<long long>(st.tokens), static_cast<long long>(st.target_tokens), out.c_str());
  return 0;
}

int cmd_export(int argc, char** argv) {
  CLI::App app{"dsv4 train export: a trainer checkpoint -> the official release layout"};
  std::string ckpt, out, tokenizer;
  app.add_option("--checkpoint", ckpt, "checkpoint.safetensors or the run's out directory")->required();
  app.add_option("--out", out, "model directory to write")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer.json to install");
  std::string master;
  app.add_option("--master-gguf", master,
                 "also write the master weights unquantised (F32) as a deepseek4 GGUF (needs --tokenizer): what the FP8 / FP4 export is compared against");
  CLI11_PARSE(app, argc, argv);
  dsv4::train::export_checkpoint(ckpt, out, tokenizer);
  std::printf("exported %s -> %s\n", ckpt.c_str(), out.c_str());
  if (!master.empty()) {
    dsv4::train::export_master_gguf(ckpt, master, tokenizer);
    std::printf("exported the unquantised master weights of %s -> %s\n", ckpt.c_str(), master.c_str());
  }
  return 0;
}

// --nproc N: runs N copies of this program on this machine as ranks 0..N-1 (RANK, WORLD_SIZE,
// LOCAL_RANK; rendezvous through a FileStore under the run's out directory).
int launch_local(int nproc, const std::string& out, char** argv) {
  std::filesystem::create_directories(out);
  const std::string store = (std::filesystem::path(out) / (".dist-store." + std::to_string(::getpid()))).string();
  std::filesystem::remove(store);
  std::vector<pid_t> pids;
  for (int rk = 0; rk < nproc; ++rk) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string v = *e;
      if (v.rfind("RANK=", 0) == 0 || v.rfind("WORLD_SIZE=", 0) == 0 || v.rfind("LOCAL_RANK=", 0) == 0 ||
          v.rfind("DSV4_DIST_STORE=", 0) == 0)
        continue;
      env.push_back(v);
    }
    env.push_back("RANK=" + std::to_string(rk));
    env.push_back("LOCAL_RANK=" + std::to_string(rk));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("DSV4_DIST_STORE=" + store);
    std::vector<char*> envp;
    for (std::string& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0)
      throw dsv4::Error("--nproc: cannot start rank " + std::to_string(rk));
    pids.push_back(pid);
  }
  int rc = 0;
  for (pid_t pid : pids) {
    int st = 0;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  std::filesystem::remove(store);
  return rc;
}

int cmd_run(int argc, char** argv) {
  CLI::App app{"dsv4 train: pre-train a V4-architecture model (see README: `dsv4 train`)"};
  std::string config;
  int64_t steps = -1;
  dsv4::train::RunOptions o;
  app.add_option("--config", config, "run.json")->required();
  app.add_flag("--resume", o.resume, "continue from OUT/checkpoint.safetensors");
  app.add_option("--steps", steps, "override the run's steps");
  app.add_flag("--quiet", o.quiet, "no progress lines");
  int nproc = 1;
  app.add_option("--nproc", nproc, "data-parallel processes on this machine (torchrun-style RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT also work)");
  app.add_option("--stop-after", o.stop_after, "stop (with a checkpoint) after this many steps; --resume continues");
  CLI11_PARSE(app, argc, argv);
  dsv4::train::RunConfig r = dsv4::train::load_run_config(config);
  if (steps >= 0) r.steps = steps;
  if (nproc > 1 && !std::getenv("RANK")) return launch_local(nproc, r.out, argv);
  dsv4::train::run_training(r, o);
  return 0;
}

// `dsv4 train distill` / `dsv4 train grpo`: post-training runs (train/post_run.h).
int cmd_post(const std::string& kind, int argc, char** argv) {
  CLI::App app{kind == "distill" ? "dsv4 train distill: on-policy distillation of domain teachers into one student"
                                 : "dsv4 train grpo: GRPO with engine rollouts from the synced policy"};
  std::string config;
  int64_t steps = -1;
  dsv4::train::PostOptions o;
  app.add_option("--config", config, kind == "distill" ? "distill.json" : "rl.json")->required();
  app.add_option("--steps", steps, "override the run's steps");
  app.add_flag("--quiet", o.quiet, "no progress lines");
  CLI11_PARSE(app, argc, argv);
  const std::string text = dsv4::read_file(config);
  if (kind == "distill") {
    dsv4::train::DistillConfig c = dsv4::train::parse_distill_config(text, config);
    if (steps >= 0) c.common.steps = steps;
    dsv4::train::run_distill(c, o);
  } else {
    dsv4::train::GrpoConfig c = dsv4::train::parse_grpo_config(text, config);
    if (steps >= 0) c.common.steps = steps;
    dsv4::train::run_grpo(c, o);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::string(argv[1]) == "export") return cmd_export(argc - 1, argv + 1);
    if (argc >= 2 && (std::string(argv[1]) == "distill" || std::string(argv[1]) == "grpo"))
      return cmd_post(argv[1], argc - 1, argv + 1);
    if (argc >= 3 && std::string(argv[1]) == "data" && std::string(argv[2]) == "prepare")
      return cmd_data_prepare(argc - 2, argv + 2);
    if (argc >= 3 && std::string(argv[1]) == "data" && std::string(argv[2]) == "sft") return cmd_data_sft(argc - 2, argv + 2);
    return cmd_run(argc, argv);
  } catch (const dsv4::Error& e) {
    std::fprintf(stderr, "dsv4 train: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsv4 train: error: %s\n", e.what());
    return 1;
  }
}

// Subcommands of the `dsv4` executable. Each lives in its own cmd_*.cc file and
// receives argv with argv[0] = "dsv4 <name>". Returns the process exit code.
#pragma once

namespace dsv4::cli {

int cmd_convert(int argc, char** argv);     // safetensors checkpoint -> deepseek4 GGUF
int cmd_check(int argc, char** argv);       // validate a model directory
int cmd_logits(int argc, char** argv);      // logits of a token sequence (fidelity checks)
int cmd_block(int argc, char** argv);       // one block, teacher-forced
int cmd_tokenize(int argc, char** argv);    // text -> ids
int cmd_detokenize(int argc, char** argv);  // ids -> text
int cmd_tokenizer(int argc, char** argv);   // tokenizer train: byte-level BPE tokenizer.json from text
int cmd_render(int argc, char** argv);      // chat messages -> prompt text / ids
int cmd_parse(int argc, char** argv);       // completion text -> assistant message JSON
int cmd_run(int argc, char** argv);         // one-shot generation
int cmd_chat(int argc, char** argv);        // interactive chat
int cmd_init(int argc, char** argv);        // write a random model in the official layout
int cmd_serve(int argc, char** argv);       // OpenAI / Anthropic HTTP server
int cmd_eval(int argc, char** argv);        // task suites against a model or an endpoint, per reasoning mode
int cmd_kv(int argc, char** argv);          // KV cache bytes at a context length
int cmd_bench(int argc, char** argv);       // machine limits + prefill/decode speed
int cmd_tasks(int argc, char** argv);       // generated task suites -> JSONL
int cmd_train(int argc, char** argv);       // runs dsv4-train (the trainer links libtorch; dsv4 does not)

}  // namespace dsv4::cli

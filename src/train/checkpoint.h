// Trainer checkpoints (no torch here): one safetensors file OUT/checkpoint.safetensors,
// written atomically, holding
//   param.NAME   F32, logical shape   every trainable parameter (official tensor names)
//   buffer.NAME  F32 / I64            gate.bias (aux-loss-free balancing), gate.tid2eid
//   optim.KEY    F32                  optimiser state (adam.m.NAME, adam.v.NAME, muon.buf.NAME)
//   meta.step    I64 [1]              steps completed
//   meta.model_config U8 [n]          the model's HF config.json text
//   meta.run     U8 [n]               the run fields a bit-exact resume needs unchanged (JSON)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "train/run.h"

namespace dsv4::train {

struct CheckpointMeta {
  int64_t step = 0;
  std::string model_config;  // config_to_hf_json text
  std::string run;           // run_identity JSON
};

// JSON of seq_len, batch, seed and muon: a resume with other values could not continue the
// run bit-exactly (other batches, another optimiser state).
std::string run_identity(const RunConfig& r);
void append_meta(std::vector<TensorData>& out, const CheckpointMeta& m);
CheckpointMeta read_meta(const TensorStore& st, const std::string& path);
// Throws Error naming the first differing field of the model config or of the run identity.
void check_resume(const CheckpointMeta& m, const RunConfig& r, const std::string& model_config, const std::string& path);

}  // namespace dsv4::train

// Data parallelism across processes with torch's c10d ProcessGroupGloo (no home-made
// transport). Launched like torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT: a TCPStore on
// rank 0) or by `dsv4 train --nproc N` (children on this machine rendezvous through a
// FileStore named by DSV4_DIST_STORE, so no port is needed).
#pragma once
#include <torch/types.h>

#include <memory>
#include <vector>

namespace dsv4::train {

class Dist {
 public:
  virtual ~Dist() = default;
  int rank = 0, world = 1;
  // Sums FP32 tensors over the ranks in place (Gloo has no BF16 all-reduce).
  virtual void allreduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  // Sums the gradients of `params` over the ranks and divides by world, in buckets of at
  // most bucket_bytes (flattened FP32 copies).
  void average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = int64_t{32} << 20);
};

// Null when WORLD_SIZE is unset or 1. Throws Error for inconsistent variables.
std::unique_ptr<Dist> dist_from_env();

}  // namespace dsv4::train

#include "train/dist.h"

#if DSV4_HAVE_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <cstdlib>
#include <string>

#include "base/error.h"

namespace dsv4::train {

namespace {

int64_t env_int(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0') throw Error(std::string("environment variable ") + name + "=" + v + " is not an integer");
  return x;
}

#if DSV4_HAVE_GLOO
class GlooDist : public Dist {
 public:
  GlooDist(int r, int w) {
    rank = r;
    world = w;
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::minutes(10));
    c10::intrusive_ptr<c10d::Store> store;
    if (const char* f = std::getenv("DSV4_DIST_STORE"); f && *f) {
      store = c10::make_intrusive<c10d::FileStore>(f, w);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      const char* addr = std::getenv("MASTER_ADDR");
      if (!addr || !*addr) throw Error("data parallel: WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT (or dsv4 train --nproc N)");
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(env_int("MASTER_PORT", 29500));
      so.isServer = r == 0;
      so.numWorkers = static_cast<size_t>(w);
      store = c10::make_intrusive<c10d::TCPStore>(addr, so);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = 1;
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, r, w, opts);
  }
  void allreduce_sum(std::vector<torch::Tensor>& tensors) override {
    for (torch::Tensor& t : tensors) {
      if (t.scalar_type() != torch::kFloat32 || !t.is_contiguous())
        throw Error("data parallel: all-reduce needs contiguous FP32 tensors");
      std::vector<torch::Tensor> one{t};
      pg_->allreduce(one)->wait();
    }
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};
#endif

}  // namespace

void Dist::average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  torch::NoGradGuard ng;
  size_t i = 0;
  while (i < params.size()) {
    std::vector<torch::Tensor> grads;
    int64_t bytes = 0;
    size_t j = i;
    for (; j < params.size() && (grads.empty() || bytes + params[j].numel() * 4 <= bucket_bytes); ++j) {
      torch::Tensor g = params[j].grad();
      if (!g.defined()) g = torch::zeros_like(params[j]);
      grads.push_back(g.reshape({-1}).to(torch::kFloat32));
      bytes += params[j].numel() * 4;
    }
    std::vector<torch::Tensor> flat{torch::cat(grads)};
    allreduce_sum(flat);
    flat[0].div_(static_cast<double>(world));
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      const torch::Tensor& p = params[k];
      torch::Tensor part = flat[0].narrow(0, off, p.numel()).view(p.sizes()).to(p.scalar_type());
      if (p.grad().defined())
        const_cast<torch::Tensor&>(p).mutable_grad().copy_(part);
      else
        const_cast<torch::Tensor&>(p).mutable_grad() = part.clone();
      off += p.numel();
    }
    i = j;
  }
}

std::unique_ptr<Dist> dist_from_env() {
  const int64_t world = env_int("WORLD_SIZE", 1);
  if (world <= 1) return nullptr;
  const int64_t rank = env_int("RANK", -1);
  if (rank < 0 || rank >= world)
    throw Error("data parallel: RANK must be in [0, WORLD_SIZE) (RANK=" + std::to_string(rank) + ", WORLD_SIZE=" +
                std::to_string(world) + ")");
#if DSV4_HAVE_GLOO
  return std::make_unique<GlooDist>(static_cast<int>(rank), static_cast<int>(world));
#else
  throw Error("data parallel: this dsv4-train was built without gloo headers (apt-get install libgloo-dev, rebuild)");
#endif
}

}  // namespace dsv4::train

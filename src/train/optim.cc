#include "train/optim.h"

#include <cmath>

#include "base/error.h"

namespace dsv4::train {

using torch::Tensor;

Tensor newton_schulz(const Tensor& g, torch::Dtype compute) {
  if (g.dim() != 2) throw Error("newton_schulz: expected a 2-D matrix");
  const bool tall = g.size(0) > g.size(1);
  Tensor X = tall ? g.t() : g;
  X = (X / (X.norm() + 1e-7)).to(compute);
  auto iterate = [&](double a, double b, double c) {
    Tensor A = torch::matmul(X, X.t());
    Tensor Bm = b * A + c * torch::matmul(A, A);
    X = a * X + torch::matmul(Bm, X);
  };
  for (int i = 0; i < 8; ++i) iterate(3.4445, -4.7750, 2.0315);
  for (int i = 0; i < 2; ++i) iterate(2.0, -1.5, 0.5);
  X = X.to(g.scalar_type());
  return tall ? X.t().contiguous() : X;
}

void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, int64_t t, double lr, const OptimConfig& cfg) {
  torch::NoGradGuard ng;
  m.mul_(cfg.beta1).add_(g, 1.0 - cfg.beta1);
  v.mul_(cfg.beta2).addcmul_(g, g, 1.0 - cfg.beta2);
  const double bc1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(t));
  p.mul_(1.0 - lr * cfg.weight_decay);
  Tensor denom = (v / bc2).sqrt_().add_(cfg.eps);
  p.addcdiv_(m, denom, -lr / bc1);
}

void muon_step(Tensor& p, const Tensor& g, Tensor& buf, double lr, const OptimConfig& cfg) {
  torch::NoGradGuard ng;
  buf.mul_(cfg.muon_momentum).add_(g);
  Tensor u = g + cfg.muon_momentum * buf;  // Nesterov
  Tensor o = newton_schulz(u, cfg.ns_bf16 ? torch::kBFloat16 : u.scalar_type());
  const double scale = cfg.muon_scale * std::sqrt(static_cast<double>(std::max(p.size(0), p.size(1))));
  p.mul_(1.0 - lr * cfg.weight_decay);
  p.add_(o, -lr * scale);
}

Optimizer::Optimizer(TrainModel& model, OptimConfig cfg) : model_(model), cfg_(cfg) {
  for (const std::string& n : model_.names) {
    const Tensor& p = model_.params.at(n);
    if (cfg_.use_muon && model_.info.at(n).muon) {
      buf_[n] = torch::zeros_like(p);
    } else {
      m_[n] = torch::zeros_like(p);
      v_[n] = torch::zeros_like(p);
    }
  }
}

void Optimizer::step(double lr) {
  ++t_;
  for (const std::string& n : model_.names) {
    Tensor& p = model_.params.at(n);
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    auto b = buf_.find(n);
    if (b != buf_.end())
      muon_step(p, g, b->second, lr, cfg_);
    else
      adamw_step(p, g, m_.at(n), v_.at(n), t_, lr, cfg_);
  }
}

std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> s;
  for (const auto& [n, t] : m_) s["adam.m." + n] = t;
  for (const auto& [n, t] : v_) s["adam.v." + n] = t;
  for (const auto& [n, t] : buf_) s["muon.buf." + n] = t;
  return s;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& s, int64_t steps) {
  auto take = [&](std::map<std::string, Tensor>& dst, const std::string& prefix) {
    for (auto& [n, t] : dst) {
      auto it = s.find(prefix + n);
      if (it == s.end()) throw Error("optimizer state: missing " + prefix + n);
      if (it->second.sizes() != t.sizes())
        throw Error("optimizer state: " + prefix + n + " has another shape than the model's parameter");
      torch::NoGradGuard ng;
      t.copy_(it->second);
    }
  };
  take(m_, "adam.m.");
  take(v_, "adam.v.");
  take(buf_, "muon.buf.");
  t_ = steps;
}

}  // namespace dsv4::train

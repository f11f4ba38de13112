#include "train/model.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "base/error.h"
#include "model/init.h"
#include "model/safetensors.h"
#include "model/state.h"
#include "model/weights.h"
#include "ops/formats.h"
#include "ops/rope.h"
#include "ops/weight_matrix.h"

namespace dsv4::train {

using torch::Tensor;
namespace F = torch::autograd;
using torch::indexing::Slice;

// ------------------------------------------------------------------------------------------
// Parameters
// ------------------------------------------------------------------------------------------

const Tensor& TrainModel::p(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) throw Error("train model: no parameter " + name);
  return it->second;
}
const Tensor& TrainModel::buf(const std::string& name) const {
  auto it = buffers.find(name);
  if (it == buffers.end()) throw Error("train model: no buffer " + name);
  return it->second;
}
int64_t TrainModel::n_params() const {
  int64_t n = 0;
  for (const auto& [k, v] : params) n += v.numel();
  return n;
}
TrainModel TrainModel::to(torch::Dtype dtype) const {
  TrainModel m = *this;
  for (auto& [k, v] : m.params) v = v.detach().to(dtype).clone().set_requires_grad(true);
  for (auto& [k, v] : m.buffers) v = v.is_floating_point() ? v.to(dtype).clone() : v.clone();
  return m;
}

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// The release layout of `c`, as (parameter name, format, logical shape); scales, tid2eid and
// gate.bias are not trainable parameters.
struct LayoutEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // logical (FP4: in, not in/2)
};
std::vector<LayoutEntry> layout(const ModelConfig& c) {
  std::vector<LayoutEntry> out;
  for (const TensorSpec& s : expected_tensors(c)) {
    if (ends_with(s.name, ".scale") && (s.dtype == DType::F8_E8M0)) continue;
    LayoutEntry e{s.name, s.dtype, s.shape};
    if (s.dtype == DType::I8) e.shape[1] *= 2;
    out.push_back(std::move(e));
  }
  return out;
}

StoreFormat format_of(DType dt) {
  switch (dt) {
    case DType::F8_E4M3: return StoreFormat::kFp8Block;
    case DType::I8: return StoreFormat::kFp4;
    case DType::BF16: return StoreFormat::kBf16;
    default: return StoreFormat::kF32;
  }
}

// Muon takes the hidden 2-D matrices; embeddings, head, gates, mHC parameters, ape (2-D
// but positional biases) go to AdamW.
bool is_muon(const std::string& name, const std::vector<int64_t>& shape) {
  if (shape.size() != 2) return false;
  if (name == "embed.weight" || name == "head.weight") return false;
  if (ends_with(name, ".ffn.gate.weight")) return false;
  if (name.find("hc_") != std::string::npos) return false;
  if (ends_with(name, ".ape")) return false;
  return true;
}

bool is_buffer(const std::string& name) { return ends_with(name, ".gate.tid2eid") || ends_with(name, ".gate.bias"); }

void register_param(TrainModel& m, const LayoutEntry& e, Tensor t) {
  m.names.push_back(e.name);
  m.info[e.name] = ParamInfo{format_of(e.dtype), is_muon(e.name, e.shape)};
  m.params[e.name] = t.set_requires_grad(true);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Loading and initialisation
// ------------------------------------------------------------------------------------------

TrainModel load_official(const std::string& dir) {
  TrainModel m;
  auto w = load_model(dir);  // validates config.json and every tensor
  m.config = w->config;
  const TensorStore& store = *w->store;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  for (const LayoutEntry& e : layout(m.config)) {
    const dsv4::Tensor& t = store.get(e.name);
    if (e.dtype == DType::I64) {
      Tensor v = torch::empty(e.shape, torch::kInt64);
      std::memcpy(v.data_ptr<int64_t>(), t.data, t.nbytes);
      m.buffers[e.name] = v;
      continue;
    }
    Tensor v = torch::empty(e.shape, f32);
    float* out = v.data_ptr<float>();
    const int64_t n = v.numel();
    if (e.dtype == DType::F32) {
      std::memcpy(out, t.data, t.nbytes);
    } else if (e.dtype == DType::BF16) {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, t.data + 2 * i, 2);
        out[i] = bf16_to_f32(b);
      }
    } else {
      WeightMatrix wm;
      wm.format = e.dtype == DType::I8 ? WeightFormat::kFp4 : WeightFormat::kFp8Block;
      wm.data = t.data;
      wm.scale = store.get(e.name.substr(0, e.name.size() - 7) + ".scale").data;
      wm.rows = e.shape[0];
      wm.cols = e.shape[1];
      wm.total_rows = e.shape[0];
      wm.block = m.config.weight_block;
      dequantize_rows(wm, 0, wm.rows, out);
    }
    if (is_buffer(e.name))
      m.buffers[e.name] = v;
    else
      register_param(m, e, v);
  }
  return m;
}

TrainModel init_model(const ModelConfig& c, uint64_t seed) {
  TrainModel m;
  m.config = c;
  torch::manual_seed(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  for (const LayoutEntry& e : layout(c)) {
    const std::string& n = e.name;
    if (ends_with(n, ".gate.tid2eid")) {
      // Each token gets n_activated distinct experts (a random permutation's head).
      Tensor ids = torch::empty(e.shape, torch::kInt64);
      for (int64_t t = 0; t < e.shape[0]; ++t)
        ids[t] = torch::randperm(c.n_routed_experts, torch::kInt64).slice(0, 0, e.shape[1]);
      m.buffers[n] = ids;
      continue;
    }
    Tensor v;
    if (ends_with(n, ".gate.bias") || ends_with(n, ".ape") || ends_with(n, "attn_sink") || ends_with(n, "_base")) {
      v = torch::zeros(e.shape, f32);
      if (ends_with(n, "_base") && e.shape[0] == c.hc_mix_dim()) {
        // comb bias favours the identity (each stream keeps itself).
        for (int64_t j = 0; j < c.hc_mult; ++j) v[2 * c.hc_mult + j * c.hc_mult + j] = 2.0;
      }
    } else if (ends_with(n, "_scale")) {
      v = torch::full(e.shape, 0.1, f32);
    } else if (ends_with(n, "_fn")) {
      v = torch::randn(e.shape, f32) * 0.02;
    } else if (e.shape.size() == 1) {
      v = torch::ones(e.shape, f32);  // norm weights
    } else if (n == "embed.weight") {
      v = torch::randn(e.shape, f32);
    } else {
      // fan-in scaled normal; output projections start smaller (residual streams).
      double std = 1.0 / std::sqrt(static_cast<double>(e.shape[1]));
      if (ends_with(n, ".wo_b.weight") || ends_with(n, ".w2.weight")) std *= 0.5;
      v = torch::randn(e.shape, f32) * std;
    }
    if (is_buffer(n))
      m.buffers[n] = v;
    else
      register_param(m, e, v);
  }
  return m;
}

// ------------------------------------------------------------------------------------------
// Custom autograd functions
// ------------------------------------------------------------------------------------------

namespace {

// Forward iterations; with `trace`, the input of every normalisation step and the softmax.
Tensor sinkhorn_iterate(const Tensor& x, int64_t iters, double eps, std::vector<Tensor>* trace) {
  Tensor sm = torch::softmax(x, -1);
  if (trace) trace->push_back(sm);
  Tensor m = sm + eps;
  for (int64_t it = 0; it < iters; ++it) {
    if (it > 0) {  // row normalisation (the first one is the softmax)
      if (trace) trace->push_back(m);
      m = m / (m.sum(-1, true) + eps);
    }
    if (trace) trace->push_back(m);
    m = m / (m.sum(-2, true) + eps);
  }
  return m;
}

// The same iterations fused per n x n matrix (one pass over memory instead of ~200 small
// torch ops per call; the profile of a training step had Sinkhorn at ~15%). Backward
// recomputes each matrix's trace on the stack. Values follow sinkhorn_iterate's formulas in
// the same order per element (grad_test ties the two together).
template <typename T>
void sinkhorn_matrix(const T* x, int64_t n, int64_t iters, T eps, T* trace /* (2 iters + 1) n^2 */, T* out) {
  const int64_t nn = n * n;
  T* sm = trace;
  for (int64_t i = 0; i < n; ++i) {  // softmax over each row
    const T* xr = x + i * n;
    T mx = xr[0];
    for (int64_t j = 1; j < n; ++j) mx = std::max(mx, xr[j]);
    T sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += (sm[i * n + j] = std::exp(xr[j] - mx));
    for (int64_t j = 0; j < n; ++j) sm[i * n + j] /= sum;
  }
  T* cur = trace + nn;  // the input of the next normalisation
  for (int64_t k = 0; k < nn; ++k) cur[k] = sm[k] + eps;
  for (int64_t it = 0; it < iters; ++it) {
    if (it > 0) {  // rows
      T* nx = cur + nn;
      for (int64_t i = 0; i < n; ++i) {
        T d = 0;
        for (int64_t j = 0; j < n; ++j) d += cur[i * n + j];
        d += eps;
        for (int64_t j = 0; j < n; ++j) nx[i * n + j] = cur[i * n + j] / d;
      }
      cur = nx;
    }
    T* nx = (it == iters - 1) ? out : cur + nn;  // columns
    for (int64_t j = 0; j < n; ++j) {
      T d = 0;
      for (int64_t i = 0; i < n; ++i) d += cur[i * n + j];
      d += eps;
      for (int64_t i = 0; i < n; ++i) nx[i * n + j] = cur[i * n + j] / d;
    }
    if (it != iters - 1) cur = nx;
  }
}

template <typename T>
void sinkhorn_matrix_backward(const T* x, const T* gy, int64_t n, int64_t iters, T eps, T* trace, T* gx) {
  const int64_t nn = n * n;
  std::vector<T> outbuf(static_cast<size_t>(nn)), g(gy, gy + nn), g2(static_cast<size_t>(nn));
  sinkhorn_matrix(x, n, iters, eps, trace, outbuf.data());
  // trace: sm, then the inputs of the normalisations in order (col of it 0, row+col of it > 0).
  int64_t k = 1 + (2 * iters - 1);  // one past the last normalisation input
  // y = m / (sum(m) + eps) along rows or columns: dm = g / d - sum(g * m) / d^2.
  auto back = [&](const T* m, bool columns) {
    for (int64_t a = 0; a < n; ++a) {
      T d = 0, gm = 0;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t e = columns ? b * n + a : a * n + b;
        d += m[e];
        gm += g[e] * m[e];
      }
      d += eps;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t e = columns ? b * n + a : a * n + b;
        g2[e] = g[e] / d - gm / (d * d);
      }
    }
    g.swap(g2);
  };
  for (int64_t it = iters - 1; it >= 0; --it) {
    back(trace + (--k) * nn, true);
    if (it > 0) back(trace + (--k) * nn, false);
  }
  const T* sm = trace;
  for (int64_t i = 0; i < n; ++i) {
    T dot = 0;
    for (int64_t j = 0; j < n; ++j) dot += g[i * n + j] * sm[i * n + j];
    for (int64_t j = 0; j < n; ++j) gx[i * n + j] = sm[i * n + j] * (g[i * n + j] - dot);
  }
}

// Applies f(matrix index, trace scratch) over all n x n matrices of a contiguous tensor.
template <typename T, typename Fn>
void for_each_matrix(int64_t count, int64_t n, int64_t iters, Fn fn) {
  at::parallel_for(0, count, 256, [&](int64_t b, int64_t e) {
    std::vector<T> trace(static_cast<size_t>((2 * iters + 1) * n * n));
    for (int64_t i = b; i < e; ++i) fn(i, trace.data());
  });
}

struct SinkhornFn : public F::Function<SinkhornFn> {
  static Tensor forward(F::AutogradContext* ctx, const Tensor& x_in, int64_t iters, double eps) {
    Tensor x = x_in.contiguous();
    ctx->save_for_backward({x});
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    const int64_t n = x.size(-1);
    if (x.size(-2) != n || iters < 1) throw Error("sinkhorn: expected [..., n, n] and iters >= 1");
    Tensor y = torch::empty_like(x);
    const int64_t count = x.numel() / (n * n);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sinkhorn", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      for_each_matrix<scalar_t>(count, n, iters, [&](int64_t i, scalar_t* tr) {
        sinkhorn_matrix<scalar_t>(xp + i * n * n, n, iters, static_cast<scalar_t>(eps), tr, yp + i * n * n);
      });
    });
    return y;
  }
  static F::variable_list backward(F::AutogradContext* ctx, F::variable_list grads) {
    const Tensor x = ctx->get_saved_variables()[0];
    const int64_t iters = ctx->saved_data["iters"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t n = x.size(-1), count = x.numel() / (n * n);
    Tensor gy = grads[0].to(x.scalar_type()).contiguous();
    Tensor gx = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sinkhorn_backward", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* gp = gy.data_ptr<scalar_t>();
      scalar_t* op = gx.data_ptr<scalar_t>();
      for_each_matrix<scalar_t>(count, n, iters, [&](int64_t i, scalar_t* tr) {
        sinkhorn_matrix_backward<scalar_t>(xp + i * n * n, gp + i * n * n, n, iters, static_cast<scalar_t>(eps), tr,
                                           op + i * n * n);
      });
    });
    return {gx, Tensor(), Tensor()};
  }
};

// mHC expand fused per token: out_k = post_k f + sum_j comb[j, k] X_j, summed in the engine's
// order (model/mhc.cc). One pass instead of 2 hc broadcast products and adds over [B, S, hc, D]
// tensors (and their backward) per sublayer. f [N, D], X [N, hc, D], post [N, hc], comb [N, hc, hc].
struct HcExpandFn : public F::Function<HcExpandFn> {
  static Tensor forward(F::AutogradContext* ctx, const Tensor& f_in, const Tensor& X_in, const Tensor& post_in,
                        const Tensor& comb_in) {
    const auto dt = X_in.scalar_type();
    if (f_in.scalar_type() != dt || post_in.scalar_type() != dt || comb_in.scalar_type() != dt)
      throw Error("hc_expand: inputs of different dtypes");
    Tensor f = f_in.contiguous(), X = X_in.contiguous(), post = post_in.contiguous(), comb = comb_in.contiguous();
    ctx->save_for_backward({f, X, post, comb});
    const int64_t hc = X.size(-2), D = X.size(-1), N = X.numel() / (hc * D);
    Tensor out = torch::empty_like(X);
    AT_DISPATCH_FLOATING_TYPES(dt, "hc_expand", [&] {
      const scalar_t *fp = f.data_ptr<scalar_t>(), *xp = X.data_ptr<scalar_t>(), *pp = post.data_ptr<scalar_t>(),
                     *cp = comb.data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
        for (int64_t n = b; n < e; ++n) {
          const scalar_t* xn = xp + n * hc * D;
          const scalar_t* cn = cp + n * hc * hc;
          const scalar_t* fn = fp + n * D;
          for (int64_t k = 0; k < hc; ++k) {
            scalar_t* o = op + (n * hc + k) * D;
            const scalar_t c0 = cn[k], pk = pp[n * hc + k];
            for (int64_t d = 0; d < D; ++d) o[d] = c0 * xn[d];
            for (int64_t j = 1; j < hc; ++j) {
              const scalar_t cj = cn[j * hc + k];
              const scalar_t* xj = xn + j * D;
              for (int64_t d = 0; d < D; ++d) o[d] = o[d] + cj * xj[d];
            }
            for (int64_t d = 0; d < D; ++d) o[d] = pk * fn[d] + o[d];
          }
        }
      });
    });
    return out;
  }
  static F::variable_list backward(F::AutogradContext* ctx, F::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &f = saved[0], &X = saved[1], &post = saved[2], &comb = saved[3];
    const int64_t hc = X.size(-2), D = X.size(-1), N = X.numel() / (hc * D);
    Tensor g = grads[0].to(X.scalar_type()).contiguous();
    Tensor gf = torch::empty_like(f), gX = torch::empty_like(X), gpost = torch::empty_like(post), gcomb = torch::empty_like(comb);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_expand_backward", [&] {
      const scalar_t *fp = f.data_ptr<scalar_t>(), *xp = X.data_ptr<scalar_t>(), *pp = post.data_ptr<scalar_t>(),
                     *cp = comb.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
      scalar_t *gfp = gf.data_ptr<scalar_t>(), *gxp = gX.data_ptr<scalar_t>(), *gpp = gpost.data_ptr<scalar_t>(),
               *gcp = gcomb.data_ptr<scalar_t>();
      at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
        for (int64_t n = b; n < e; ++n) {
          const scalar_t* gn = gp + n * hc * D;  // g_k = gn + k D
          const scalar_t* xn = xp + n * hc * D;
          const scalar_t* fn = fp + n * D;
          // df = sum_k post_k g_k; dpost_k = <f, g_k>
          scalar_t* gfn = gfp + n * D;
          for (int64_t d = 0; d < D; ++d) gfn[d] = pp[n * hc] * gn[d];
          for (int64_t k = 1; k < hc; ++k) {
            const scalar_t pk = pp[n * hc + k];
            for (int64_t d = 0; d < D; ++d) gfn[d] += pk * gn[k * D + d];
          }
          for (int64_t k = 0; k < hc; ++k) {
            scalar_t acc = 0;
            for (int64_t d = 0; d < D; ++d) acc += fn[d] * gn[k * D + d];
            gpp[n * hc + k] = acc;
          }
          // dX_j = sum_k comb[j, k] g_k; dcomb[j, k] = <X_j, g_k>
          for (int64_t j = 0; j < hc; ++j) {
            const scalar_t* cj = cp + n * hc * hc + j * hc;
            scalar_t* gxj = gxp + (n * hc + j) * D;
            for (int64_t d = 0; d < D; ++d) gxj[d] = cj[0] * gn[d];
            for (int64_t k = 1; k < hc; ++k)
              for (int64_t d = 0; d < D; ++d) gxj[d] += cj[k] * gn[k * D + d];
            const scalar_t* xj = xn + j * D;
            for (int64_t k = 0; k < hc; ++k) {
              scalar_t acc = 0;
              for (int64_t d = 0; d < D; ++d) acc += xj[d] * gn[k * D + d];
              gcp[n * hc * hc + j * hc + k] = acc;
            }
          }
        }
      });
    });
    return {gf, gX, gpost, gcomb};
  }
};

// Partial RoPE as one kernel: rotates the last rd dims (interleaved pairs) of x [B, S, ..., hd]
// by position s's angles (cos / sin [S, rd/2]); inverse: by -angle. The backward is the
// opposite rotation. Same per-element formulas as the engine (re = a cos - b sin, im = a sin + b cos).
template <typename T>
void rope_rows(const T* x, const T* cs, const T* sn, int64_t B, int64_t S, int64_t M, int64_t hd, int64_t rd, bool inverse,
               T* y) {
  const int64_t P = rd / 2, pass = hd - rd;
  at::parallel_for(0, B * S, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t bs = b0; bs < b1; ++bs) {
      const int64_t s = bs % S;
      const T* c = cs + s * P;
      const T* si = sn + s * P;
      for (int64_t m = 0; m < M; ++m) {
        const T* xr = x + (bs * M + m) * hd;
        T* yr = y + (bs * M + m) * hd;
        for (int64_t d = 0; d < pass; ++d) yr[d] = xr[d];
        for (int64_t i = 0; i < P; ++i) {
          const T a = xr[pass + 2 * i], b = xr[pass + 2 * i + 1], ci = c[i], sv = inverse ? -si[i] : si[i];
          yr[pass + 2 * i] = a * ci - b * sv;
          yr[pass + 2 * i + 1] = a * sv + b * ci;
        }
      }
    }
  });
}

Tensor rope_apply_raw(const Tensor& x_in, const Tensor& cos, const Tensor& sin, int64_t rd, bool inverse) {
  Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), S = x.size(1), hd = x.size(-1), M = x.numel() / std::max<int64_t>(B * S * hd, 1);
  Tensor c = cos.to(x.scalar_type()).reshape({-1, rd / 2}).contiguous(), sn = sin.to(x.scalar_type()).reshape({-1, rd / 2}).contiguous();
  if (c.size(0) != S || rd > hd || rd % 2 != 0) throw Error("rope: tables do not match the input's positions or head size");
  Tensor y = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rope", [&] {
    rope_rows<scalar_t>(x.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), sn.data_ptr<scalar_t>(), B, S, M, hd, rd, inverse,
                        y.data_ptr<scalar_t>());
  });
  return y;
}

struct RopeFn : public F::Function<RopeFn> {
  static Tensor forward(F::AutogradContext* ctx, const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t rd,
                        bool inverse) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["rd"] = rd;
    ctx->saved_data["inverse"] = inverse;
    return rope_apply_raw(x, cos, sin, rd, inverse);
  }
  static F::variable_list backward(F::AutogradContext* ctx, F::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor g = rope_apply_raw(grads[0], saved[0], saved[1], ctx->saved_data["rd"].toInt(),
                                    !ctx->saved_data["inverse"].toBool());
    return {g, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// Fake quantisation through the release's own encoders (model/init.h): the values are
// exactly what export writes and the engine dequantises.
Tensor quantize_values(const Tensor& w, StoreFormat format, int64_t block) {
  Tensor x = w.detach().to(torch::kFloat32).contiguous();
  Tensor out = torch::empty_like(x);
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t n = x.numel();
  if (format == StoreFormat::kBf16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = round_bf16(src[i]);
  } else if (format == StoreFormat::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else {
    const int64_t rows = x.size(0), cols = x.size(1);
    WeightMatrix wm;
    wm.rows = rows;
    wm.cols = cols;
    wm.total_rows = rows;
    wm.block = block;
    std::vector<uint8_t> codes, scales;
    if (format == StoreFormat::kFp8Block) {
      const int64_t sb = (cols + block - 1) / block, rb = (rows + block - 1) / block;
      codes.resize(static_cast<size_t>(rows * cols));
      scales.resize(static_cast<size_t>(rb * sb));
      init_codec::quantize_fp8(src, rows, cols, block, codes.data(), scales.data());
      wm.format = WeightFormat::kFp8Block;
    } else {
      if (cols % 32 != 0) throw Error("fake_quant: FP4 weight with " + std::to_string(cols) + " inputs (not a multiple of 32)");
      codes.resize(static_cast<size_t>(rows * cols / 2));
      scales.resize(static_cast<size_t>(rows * cols / 32));
      for (int64_t r = 0; r < rows; ++r)
        init_codec::quantize_fp4_row(src + r * cols, cols, codes.data() + r * cols / 2, scales.data() + r * cols / 32);
      wm.format = WeightFormat::kFp4;
    }
    wm.data = codes.data();
    wm.scale = scales.data();
    dequantize_rows(wm, 0, rows, dst);
  }
  return out.to(w.scalar_type());
}

struct FakeQuantFn : public F::Function<FakeQuantFn> {
  static Tensor forward(F::AutogradContext*, const Tensor& w, int64_t format, int64_t block) {
    return quantize_values(w, static_cast<StoreFormat>(format), block);
  }
  static F::variable_list backward(F::AutogradContext*, F::variable_list grads) {
    return {grads[0], Tensor(), Tensor()};
  }
};

}  // namespace

Tensor sinkhorn(const Tensor& logits, int64_t iters, double eps) { return SinkhornFn::apply(logits, iters, eps); }
Tensor sinkhorn_plain(const Tensor& logits, int64_t iters, double eps) {
  return sinkhorn_iterate(logits, iters, eps, nullptr);
}
Tensor fake_quant(const Tensor& w, StoreFormat format, int64_t block) {
  return FakeQuantFn::apply(w, static_cast<int64_t>(format), block);
}

// ------------------------------------------------------------------------------------------
// Forward
// ------------------------------------------------------------------------------------------

namespace {

// RoPE tables of one layer for positions 0..S-1: cos, sin [S, rd/2], computed as the engine
// does (FP32 angle, cos / sin in double rounded once).
struct Rope {
  Tensor cos, sin;
};
Rope rope_tables(const ModelConfig& c, int64_t layer, int64_t S, torch::Dtype dtype) {
  const RopeTable tab = make_rope_table(layer_rope_params(c, layer));
  const int64_t P = c.rope_dim / 2;
  Tensor cs = torch::empty({S, P}, torch::kFloat32), sn = torch::empty({S, P}, torch::kFloat32);
  float* cp = cs.data_ptr<float>();
  float* sp = sn.data_ptr<float>();
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = 0; i < P; ++i) {
      const float angle = static_cast<float>(s) * tab.freqs[static_cast<size_t>(i)];
      cp[s * P + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sp[s * P + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  return {cs.to(dtype), sn.to(dtype)};
}

// Rotates the last rd dims of x (interleaved pairs). cos / sin broadcast against x[..., rd/2]
// (the caller shapes them). inverse: rotation by -angle.
Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t rd, bool inverse) {
  if (x.dim() >= 3 && rd > 0) return RopeFn::apply(x, cos.detach(), sin.detach(), rd, inverse);
  const int64_t hd = x.size(-1);
  Tensor pass = x.narrow(-1, 0, hd - rd);
  std::vector<int64_t> shp = x.sizes().vec();
  shp.back() = rd / 2;
  shp.push_back(2);
  Tensor r = x.narrow(-1, hd - rd, rd).reshape(shp);
  Tensor a = r.select(-1, 0), b = r.select(-1, 1);
  Tensor s = inverse ? -sin : sin;
  Tensor re = a * cos - b * s, im = a * s + b * cos;
  Tensor rot = torch::stack({re, im}, -1).flatten(-2);
  return torch::cat({pass, rot}, -1);
}

Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
  Tensor y = x * torch::rsqrt(x.pow(2).mean(-1, true) + eps);
  return w.defined() ? y * w : y;
}

// Sylvester Hadamard matrix / sqrt(n).
Tensor hadamard_matrix(int64_t n, torch::Dtype dtype) {
  Tensor h = torch::ones({1, 1}, torch::kFloat64);
  while (h.size(0) < n) h = torch::cat({torch::cat({h, h}, 1), torch::cat({h, -h}, 1)}, 0);
  if (h.size(0) != n) throw Error("hadamard: size " + std::to_string(n) + " is not a power of two");
  return (h / std::sqrt(static_cast<double>(n))).to(dtype);
}

// Row-wise top-k with the engine's rule (higher score first, ties by lower index) over the
// entries where `valid` is set; returns a bool mask of the selected entries.
Tensor topk_mask(const Tensor& score, const Tensor& valid, int64_t k) {
  Tensor s = score.detach().to(torch::kFloat64).contiguous();
  Tensor v = valid.contiguous();
  const int64_t T = s.size(-1), R = s.numel() / std::max<int64_t>(T, 1);
  Tensor mask = torch::zeros(s.sizes(), torch::kBool);
  if (T == 0) return mask;
  const double* sp = s.data_ptr<double>();
  const bool* vp = v.data_ptr<bool>();
  bool* mp = mask.data_ptr<bool>();
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < R; ++r) {
    idx.clear();
    for (int64_t i = 0; i < T; ++i)
      if (vp[r * T + i]) idx.push_back(i);
    const int64_t m = std::min<int64_t>(k, static_cast<int64_t>(idx.size()));
    const double* row = sp + r * T;
    std::partial_sort(idx.begin(), idx.begin() + m, idx.end(), [row](int64_t a, int64_t b) {
      if (row[a] != row[b]) return row[a] > row[b];
      return a < b;
    });
    for (int64_t j = 0; j < m; ++j) mp[r * T + idx[static_cast<size_t>(j)]] = true;
  }
  return mask;
}

struct Ctx {
  const TrainModel& m;
  const ModelConfig& c;
  const ForwardOptions& opt;
  int64_t B, S;
  torch::Dtype dtype;
  Tensor balance_loss, indexer_kl;
  std::vector<int64_t> routed_layers;
  std::vector<Tensor> expert_load;

  // A weight as the forward uses it (fake-quantised under QAT).
  Tensor w(const std::string& name) const {
    const Tensor& t = m.p(name);
    if (!opt.qat) return t;
    const StoreFormat f = m.info.at(name).format;
    if (f == StoreFormat::kF32) return t;
    return fake_quant(t, f, c.weight_block);
  }
  // A projection matrix: w(name), in BF16 under mixed precision (the FP32 master keeps the
  // gradient: the cast is differentiable).
  Tensor mat(const std::string& name) const {
    Tensor t = w(name);
    return opt.bf16 && t.scalar_type() == torch::kFloat32 ? t.to(torch::kBFloat16) : t;
  }
};

// x W^T; a BF16 weight (mixed precision) takes BF16 inputs (FP32 accumulation in oneDNN)
// and the result returns in x's dtype.
Tensor mm_t(const Tensor& x, const Tensor& w) {
  if (w.scalar_type() == x.scalar_type()) return torch::matmul(x, w.t());
  return torch::matmul(x.to(w.scalar_type()), w.t()).to(x.scalar_type());
}

// x W_i^T for weights that share the input x: one GEMM over the concatenated weights (one
// BF16 conversion of x and of the output under mixed precision), split back per weight.
std::vector<Tensor> mm_t_multi(const Tensor& x, const std::vector<Tensor>& ws) {
  std::vector<int64_t> rows;
  for (const Tensor& w : ws) rows.push_back(w.size(0));
  return mm_t(x, torch::cat(ws, 0)).split_with_sizes(rows, -1);
}

struct HcMix {
  Tensor pre, post, comb;  // [B,S,hc], [B,S,hc], [B,S,hc,hc]
};

// mixes = (fn . flat(X)) * rsqrt(mean(flat(X)^2) + norm_eps)
Tensor hc_mixes(const Ctx& cx, const std::string& site, const Tensor& X) {
  Tensor flat = X.flatten(-2);
  Tensor mixes = mm_t(flat, cx.w(site + "_fn"));
  return mixes * torch::rsqrt(flat.pow(2).mean(-1, true) + cx.c.norm_eps);
}

HcMix hc_coeffs(const Ctx& cx, const std::string& site, const Tensor& X) {
  const int64_t hc = cx.c.hc_mult;
  Tensor mx = hc_mixes(cx, site, X);
  Tensor scale = cx.w(site + "_scale"), base = cx.w(site + "_base");
  HcMix r;
  r.pre = torch::sigmoid(mx.narrow(-1, 0, hc) * scale[0] + base.narrow(0, 0, hc)) + cx.c.hc_eps;
  r.post = 2.0 * torch::sigmoid(mx.narrow(-1, hc, hc) * scale[1] + base.narrow(0, hc, hc));
  Tensor comb = mx.narrow(-1, 2 * hc, hc * hc) * scale[2] + base.narrow(0, 2 * hc, hc * hc);
  std::vector<int64_t> shp = comb.sizes().vec();
  shp.back() = hc;
  shp.push_back(hc);
  r.comb = sinkhorn(comb.reshape(shp), cx.c.hc_sinkhorn_iters, cx.c.hc_eps);
  return r;
}

// y = sum_j pre_j X_j
Tensor hc_collapse(const Tensor& X, const Tensor& pre) { return (pre.unsqueeze(-1) * X).sum(-2); }
// out_k = post_k f + sum_j comb[j, k] X_j
Tensor hc_expand(const Tensor& f, const Tensor& X, const HcMix& h) {
  // A fused kernel (HcExpandFn): a batched matmul of B*S tiny hc x hc matrices runs one GEMM
  // call per token in torch's CPU bmm, and broadcast products materialise [B, S, hc, D] terms.
  return HcExpandFn::apply(f, X, h.post, h.comb);
}

// Compressed entries [B, T, d] (T = S / ratio) of a compressor (spec 3.4), normalised, with
// RoPE at position ratio * i; indexer keys also Hadamard-rotated.
// xkv, xgate: the compressor's wkv and wgate projections of every position [B, S, coff d].
Tensor compress(const Ctx& cx, const std::string& pre, const Tensor& xkv, const Tensor& xgate, int64_t ratio, int64_t d,
                const Rope& rope, const Tensor& hadamard) {
  const int64_t B = xkv.size(0), S = xkv.size(1), r = ratio, coff = r == 4 ? 2 : 1, cd = coff * d;
  const int64_t T = S / r;
  if (T == 0) return torch::zeros({B, 0, d}, xkv.options());
  Tensor A = xkv.narrow(1, 0, T * r).reshape({B, T, r, cd});
  Tensor Z = xgate.narrow(1, 0, T * r).reshape({B, T, r, cd}) + cx.w(pre + ".ape");
  Tensor wts, vals;
  if (coff == 1) {
    wts = torch::softmax(Z, 2);
    vals = A;
  } else {
    Tensor Ap = A.narrow(-1, 0, d), Zp = Z.narrow(-1, 0, d);
    // previous window of entry i = window i-1; entry 0 has none (score -inf).
    Tensor Aprev = torch::cat({torch::zeros({B, 1, r, d}, A.options()), Ap.narrow(1, 0, T - 1)}, 1);
    Tensor Zprev = torch::cat({torch::full({B, 1, r, d}, -INFINITY, Z.options()), Zp.narrow(1, 0, T - 1)}, 1);
    vals = torch::cat({Aprev, A.narrow(-1, d, d)}, 2);
    wts = torch::softmax(torch::cat({Zprev, Z.narrow(-1, d, d)}, 2), 2);
  }
  Tensor C = (wts * vals).sum(2);  // [B, T, d]
  C = rms_norm(C, cx.w(pre + ".norm.weight"), cx.c.norm_eps);
  Tensor pos = torch::arange(T, torch::kInt64) * r;
  C = apply_rope(C, rope.cos.index_select(0, pos), rope.sin.index_select(0, pos), cx.c.rope_dim, false);
  if (hadamard.defined()) C = torch::matmul(C, hadamard);
  return C;
}

// Attention sublayer (spec 3.3) over whole sequences. x: normalised input [B, S, D].
Tensor attention(Ctx& cx, const std::string& pre, int64_t layer, const Tensor& x) {
  const ModelConfig& c = cx.c;
  const int64_t B = cx.B, S = cx.S, H = c.n_heads, hd = c.head_dim, rd = c.rope_dim, W = c.window;
  const int64_t ratio = c.compress_ratio(layer);
  const Rope rope = rope_tables(c, layer, S, cx.dtype);
  const Tensor cos_h = rope.cos.view({S, 1, rd / 2}), sin_h = rope.sin.view({S, 1, rd / 2});
  // Projections of x: wq_a, wkv (and the compressor's wkv, wgate) in one GEMM.
  std::vector<Tensor> xw{cx.mat(pre + ".wq_a.weight"), cx.mat(pre + ".wkv.weight")};
  if (ratio > 0) {
    xw.push_back(cx.mat(pre + ".compressor.wkv.weight"));
    xw.push_back(cx.mat(pre + ".compressor.wgate.weight"));
  }
  const std::vector<Tensor> xp = mm_t_multi(x, xw);
  Tensor qr = rms_norm(xp[0], cx.w(pre + ".q_norm.weight"), c.norm_eps);
  Tensor q = mm_t(qr, cx.mat(pre + ".wq_b.weight")).view({B, S, H, hd});
  q = rms_norm(q, Tensor(), c.norm_eps);
  q = apply_rope(q, cos_h, sin_h, rd, false);
  Tensor kv = rms_norm(xp[1], cx.w(pre + ".kv_norm.weight"), c.norm_eps);
  kv = apply_rope(kv, rope.cos, rope.sin, rd, false);  // [B, S, hd]
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Tensor pos = torch::arange(S, torch::kInt64);
  Tensor entries, allowed, iscore;  // [B, T, hd], [B, S, T], [B, S, T]
  if (ratio > 0) {
    entries = compress(cx, pre + ".compressor", xp[2], xp[3], ratio, hd, rope, Tensor());
    const int64_t T = entries.size(1);
    Tensor ent = torch::arange(T, torch::kInt64);
    Tensor visible = ent.view({1, T}) < (pos.view({S, 1}) + 1).div(ratio, "floor");  // [S, T]
    allowed = visible.unsqueeze(0).expand({B, S, T});
    if (c.attention_kind(layer) == AttentionKind::kCsa) {
      // Lightning indexer (spec 3.5). Its inputs are detached: it learns from its KL only.
      const int64_t HI = c.index_n_heads, cI = c.index_head_dim;
      const Tensor had = hadamard_matrix(cI, cx.dtype);
      const std::string ip = pre + ".indexer";
      Tensor xi = x.detach(), qri = qr.detach();
      Tensor iq = mm_t(qri, cx.mat(ip + ".wq_b.weight")).view({B, S, HI, cI});
      iq = torch::matmul(apply_rope(iq, cos_h, sin_h, rd, false), had);
      const std::vector<Tensor> ixp = mm_t_multi(
          xi, {cx.mat(ip + ".weights_proj.weight"), cx.mat(ip + ".compressor.wkv.weight"), cx.mat(ip + ".compressor.wgate.weight")});
      Tensor iw = ixp[0] * (1.0 / std::sqrt(static_cast<double>(cI)) / std::sqrt(static_cast<double>(HI)));
      Tensor keys = compress(cx, ip + ".compressor", ixp[1], ixp[2], ratio, cI, rope, had);  // [B, T, cI]
      Tensor dots = torch::matmul(iq, keys.unsqueeze(1).transpose(-1, -2));  // [B, S, HI, T]
      iscore = (torch::relu(dots) * iw.unsqueeze(-1)).sum(2);                // [B, S, T]
      if (cx.opt.indexer == IndexerPhase::kSparse) allowed = topk_mask(iscore, allowed, c.index_topk);
    }
  }
  const int64_t T = entries.defined() ? entries.size(1) : 0;
  Tensor o;      // [B, S, H, hd]
  Tensor p_cmp;  // [B, S, T]: attention probabilities of the compressed entries summed over heads (KL target)
  const bool want_kl = iscore.defined() && cx.opt.indexer_loss && T > 0;
  if (cx.opt.dense_attention || W <= 0) {
    Tensor qh = q.transpose(1, 2);  // [B, H, S, hd]
    Tensor s_win = torch::matmul(qh, kv.unsqueeze(1).transpose(-1, -2)) * scale;  // [B, H, S, S]
    Tensor win_ok = (pos.view({1, S}) <= pos.view({S, 1})) & (pos.view({1, S}) > pos.view({S, 1}) - W);  // [S, S]
    std::vector<Tensor> scores{s_win.masked_fill(win_ok.logical_not(), -INFINITY)};
    if (ratio > 0) {
      Tensor s_cmp = torch::matmul(qh, entries.unsqueeze(1).transpose(-1, -2)) * scale;  // [B, H, S, T]
      scores.push_back(s_cmp.masked_fill(allowed.unsqueeze(1).logical_not(), -INFINITY));
    }
    scores.push_back(cx.w(pre + ".attn_sink").view({1, H, 1, 1}).expand({B, H, S, 1}));
    Tensor probs = torch::softmax(torch::cat(scores, -1), -1);  // [B, H, S, S (+T) + 1]
    o = torch::matmul(probs.narrow(-1, 0, S), kv.unsqueeze(1));
    if (T > 0) o = o + torch::matmul(probs.narrow(-1, S, T), entries.unsqueeze(1));
    o = o.transpose(1, 2);
    if (want_kl) p_cmp = probs.detach().narrow(-1, S, T).sum(1);
  } else {
    // Block-banded window: queries in blocks of W positions see the keys of their own and the
    // previous block (2W keys, the band masked inside), so time and memory grow linearly in S.
    // Rows are (position, head): q needs no transpose and one GEMM per block covers all heads.
    const int64_t nb = (S + W - 1) / W, Sp = nb * W, W2 = 2 * W;
    Tensor qb = torch::constant_pad_nd(q, {0, 0, 0, 0, 0, Sp - S}).view({B, nb, W * H, hd});
    Tensor kp = torch::constant_pad_nd(kv, {0, 0, W, Sp - S});  // [B, W + Sp, hd]: a zero block first
    Tensor kblk = kp.unfold(1, W2, W);                           // [B, nb, hd, 2W]
    Tensor s_win = (torch::matmul(qb, kblk) * scale).view({B, nb, W, H, W2});
    // query r of block b sees key c of [block b-1, block b] iff r < c <= r + W and the key
    // position (b-1) W + c is >= 0.
    Tensor r_i = torch::arange(W, torch::kInt64).view({1, W, 1}), c_i = torch::arange(W2, torch::kInt64).view({1, 1, W2});
    Tensor b_i = torch::arange(nb, torch::kInt64).view({nb, 1, 1});
    Tensor band_ok = (c_i > r_i) & (c_i <= r_i + W) & ((b_i - 1) * W + c_i >= 0);  // [nb, W, 2W]
    s_win = s_win.masked_fill(band_ok.logical_not().unsqueeze(2), -INFINITY).view({B, Sp, H, W2}).narrow(1, 0, S);
    std::vector<Tensor> scores{s_win};
    if (T > 0) {
      Tensor s_cmp = (torch::matmul(q.reshape({B, S * H, hd}), entries.transpose(1, 2)) * scale).view({B, S, H, T});
      scores.push_back(s_cmp.masked_fill(allowed.unsqueeze(2).logical_not(), -INFINITY));
    }
    scores.push_back(cx.w(pre + ".attn_sink").view({1, 1, H, 1}).expand({B, S, H, 1}));
    Tensor probs = torch::softmax(torch::cat(scores, -1), -1);  // [B, S, H, 2W (+T) + 1]
    Tensor pw = torch::constant_pad_nd(probs.narrow(-1, 0, W2), {0, 0, 0, 0, 0, Sp - S}).reshape({B, nb, W * H, W2});
    o = torch::matmul(pw, kblk.transpose(-1, -2)).view({B, Sp, H, hd}).narrow(1, 0, S);
    if (T > 0) o = o + torch::matmul(probs.narrow(-1, W2, T).reshape({B, S * H, T}), entries).view({B, S, H, hd});
    if (want_kl) p_cmp = probs.detach().narrow(-1, W2, T).sum(2);
  }
  if (want_kl) {
    // KL(target || indexer) over the attended entries; target: the main attention's
    // probabilities over those entries, summed over heads and renormalised (detached).
    Tensor row_ok = allowed.any(-1);  // [B, S]
    Tensor tgt = p_cmp / (p_cmp.sum(-1, true) + 1e-30);
    Tensor logq = torch::log_softmax(iscore.masked_fill(allowed.logical_not(), -1e30), -1);
    Tensor kl = torch::where(allowed, tgt * (torch::log(tgt.clamp_min(1e-30)) - logq), torch::zeros_like(tgt)).sum(-1);
    Tensor n_rows = row_ok.sum().clamp_min(1).to(kl.scalar_type());
    Tensor l = (kl * row_ok.to(kl.scalar_type())).sum() / n_rows;
    cx.indexer_kl = cx.indexer_kl.defined() ? cx.indexer_kl + l : l;
  }
  o = apply_rope(o, cos_h, sin_h, rd, true);  // [B, S, H, hd]
  // Grouped low-rank output.
  const int64_t G = c.o_groups, dg = c.o_lora_rank, gin = H * hd / G;
  Tensor og = o.reshape({B, S, G, 1, gin});
  Tensor wa = cx.mat(pre + ".wo_a.weight").view({G, dg, gin});
  Tensor u = torch::matmul(og.to(wa.scalar_type()), wa.transpose(-1, -2)).to(og.scalar_type()).reshape({B, S, G * dg});
  return mm_t(u, cx.mat(pre + ".wo_b.weight"));
}

Tensor expert(const Ctx& cx, const std::string& pre, const Tensor& x, const Tensor& rw) {
  const std::vector<Tensor> a13 = mm_t_multi(x, {cx.mat(pre + ".w1.weight"), cx.mat(pre + ".w3.weight")});
  Tensor a1 = a13[0], a3 = a13[1];
  const double lim = cx.c.swiglu_limit;
  if (lim > 0) {
    a1 = torch::clamp_max(a1, lim);
    a3 = torch::clamp(a3, -lim, lim);
  }
  Tensor h = torch::silu(a1) * a3;
  if (rw.defined()) h = h * rw.unsqueeze(-1);
  return mm_t(h, cx.mat(pre + ".w2.weight"));
}

// MoE sublayer (spec 3.7). x [B, S, D], tokens [B, S].
Tensor moe(Ctx& cx, const std::string& pre, int64_t layer, const Tensor& x, const Tensor& tokens) {
  const ModelConfig& c = cx.c;
  const int64_t E = c.n_routed_experts, k = c.n_activated_experts, D = c.dim;
  const int64_t B = x.size(0), S = x.size(1), N = B * S;
  Tensor xf = x.reshape({N, D});
  Tensor s = torch::sqrt(torch::softplus(mm_t(xf, cx.w(pre + ".gate.weight"))));  // [N, E]
  Tensor idx;
  const bool hash = c.is_hash_layer(layer);
  if (hash) {
    idx = cx.m.buf(pre + ".gate.tid2eid").index_select(0, tokens.reshape({N}));
  } else {
    Tensor biased = s.detach() + cx.m.buf(pre + ".gate.bias").to(s.scalar_type());
    idx = std::get<1>(torch::topk(biased, k, -1, true, true));
  }
  Tensor g = s.gather(1, idx);
  g = g / g.sum(-1, true) * c.route_scale;
  Tensor y = torch::zeros({N, D}, x.options());
  Tensor flat_idx = idx.reshape({N * k});
  for (int64_t e = 0; e < E; ++e) {
    Tensor sel = (flat_idx == e).nonzero().squeeze(-1);
    if (sel.numel() == 0) continue;
    Tensor rows = sel.div(k, "floor");
    Tensor ye = expert(cx, pre + ".experts." + std::to_string(e), xf.index_select(0, rows),
                       g.reshape({N * k}).index_select(0, sel));
    y = y.index_add(0, rows, ye);
  }
  if (c.n_shared_experts > 0) y = y + expert(cx, pre + ".shared_experts", xf, Tensor());
  if (!hash) {
    Tensor load = torch::bincount(flat_idx, {}, E).to(torch::kFloat32);
    cx.routed_layers.push_back(layer);
    cx.expert_load.push_back(load);
    // Sequence-wise balance loss (V3): sum_e f_e P_e per sequence, f_e = E / (k S) * tokens
    // of the sequence routed to e, P_e = mean over the sequence of the normalised scores.
    Tensor onehot = torch::zeros({N, E}, s.options()).scatter_(1, idx, 1.0).view({B, S, E});
    Tensor f = onehot.sum(1) * (static_cast<double>(E) / static_cast<double>(k * S));
    Tensor P = (s / s.sum(-1, true)).view({B, S, E}).mean(1);
    Tensor l = (f * P).sum(-1).mean();
    cx.balance_loss = cx.balance_loss.defined() ? cx.balance_loss + l : l;
  }
  return y.view({B, S, D});
}

Tensor block(Ctx& cx, const std::string& pre, int64_t layer, Tensor X, const Tensor& tokens) {
  const double eps = cx.c.norm_eps;
  HcMix h = hc_coeffs(cx, pre + ".hc_attn", X);
  Tensor a = rms_norm(hc_collapse(X, h.pre), cx.w(pre + ".attn_norm.weight"), eps);
  X = hc_expand(attention(cx, pre + ".attn", layer, a), X, h);
  h = hc_coeffs(cx, pre + ".hc_ffn", X);
  Tensor f = rms_norm(hc_collapse(X, h.pre), cx.w(pre + ".ffn_norm.weight"), eps);
  return hc_expand(moe(cx, pre + ".ffn", layer, f, tokens), X, h);
}

Tensor head(const Ctx& cx, const std::string& hc_site, const std::string& norm, const Tensor& X) {
  Tensor mx = hc_mixes(cx, hc_site, X);
  Tensor pre = torch::sigmoid(mx * cx.w(hc_site + "_scale")[0] + cx.w(hc_site + "_base")) + cx.c.hc_eps;
  Tensor y = rms_norm(hc_collapse(X, pre), cx.w(norm), cx.c.norm_eps);
  return mm_t(y, cx.mat("head.weight"));
}

}  // namespace

ForwardResult forward(const TrainModel& m, const Tensor& tokens, const ForwardOptions& opt) {
  const ModelConfig& c = m.config;
  if (tokens.dim() != 2) throw Error("train forward: tokens must be [B, S]");
  const int64_t B = tokens.size(0), S = tokens.size(1);
  if (S < 1) throw Error("train forward: empty sequences");
  {
    const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    if (lo < 0 || hi >= c.vocab_size)
      throw Error("train forward: token id " + std::to_string(lo < 0 ? lo : hi) + " out of range [0, " +
                  std::to_string(c.vocab_size) + ")");
  }
  const Tensor& embed = m.p("embed.weight");
  Ctx cx{m, c, opt, B, S, embed.scalar_type(), Tensor(), Tensor(), {}, {}};
  Tensor emb = cx.w("embed.weight").index_select(0, tokens.reshape({B * S})).view({B, S, 1, c.dim});
  Tensor X = emb.expand({B, S, c.hc_mult, c.dim});
  for (int64_t l = 0; l < c.n_layers; ++l) X = block(cx, "layers." + std::to_string(l), l, X, tokens);
  ForwardResult r;
  r.logits = head(cx, "hc_head", "norm.weight", X);
  if (opt.mtp && c.n_mtp_layers > 0 && S >= 2) {
    // Position i: final streams at i + embedding of token i+1; predicts token i+2.
    const std::string p = "mtp.0";
    Tensor next = tokens.narrow(1, 1, S - 1);
    Tensor e = cx.w("embed.weight").index_select(0, next.reshape({B * (S - 1)})).view({B, S - 1, c.dim});
    e = mm_t(rms_norm(e, cx.w(p + ".enorm.weight"), c.norm_eps), cx.mat(p + ".e_proj.weight"));
    Tensor hn = rms_norm(X.narrow(1, 0, S - 1), cx.w(p + ".hnorm.weight"), c.norm_eps);
    Tensor Xm = e.unsqueeze(2) + mm_t(hn, cx.mat(p + ".h_proj.weight"));
    Ctx mc{m, c, opt, B, S - 1, cx.dtype, cx.balance_loss, cx.indexer_kl, std::move(cx.routed_layers),
           std::move(cx.expert_load)};
    Xm = block(mc, p, c.n_layers, Xm, next);
    r.mtp_logits = head(mc, p + ".hc_head", p + ".norm.weight", Xm);
    cx.balance_loss = mc.balance_loss;
    cx.indexer_kl = mc.indexer_kl;
    cx.routed_layers = std::move(mc.routed_layers);
    cx.expert_load = std::move(mc.expert_load);
  }
  r.balance_loss = cx.balance_loss.defined() ? cx.balance_loss : torch::zeros({}, embed.options().requires_grad(false));
  r.indexer_kl = cx.indexer_kl.defined() ? cx.indexer_kl : torch::zeros({}, embed.options().requires_grad(false));
  r.routed_layers = std::move(cx.routed_layers);
  r.expert_load = std::move(cx.expert_load);
  return r;
}

}  // namespace dsv4::train

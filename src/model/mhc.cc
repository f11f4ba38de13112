#include "model/mhc.h"

#include "model/common.h"
#include "ops/linear.h"
#include "ops/math.h"
#include "ops/sinkhorn.h"

namespace dsv4 {

namespace {

// mixes[t, m] = (fn . x_t) * rsqrt(mean(x_t^2) + eps), x_t the flattened streams (FP32).
void hc_mixes(const ModelConfig& c, const HcWeights& site, const float* X, int64_t n, float* mixes, int64_t mix,
              Numerics nm) {
  const int64_t hd = c.hc_dim();
  // FP32 x FP32 -> FP32 with double accumulation (kReference + kFp32), as the golden data
  // computes FP32 products; the kernels' precise path would accumulate in FP32 lanes.
  linear(matrix_of(site.fn), X, hd, n, mixes, mix, Numerics::kReference, LinearCompute::kFp32);
  for (int64_t t = 0; t < n; ++t) {
    const float* x = X + t * hd;
    double ss = 0;
    for (int64_t i = 0; i < hd; ++i) ss += static_cast<double>(x[i]) * x[i];
    float ms = static_cast<float>(ss / static_cast<double>(hd));
    float r = rsqrt_f32(ms + static_cast<float>(c.norm_eps));
    for (int64_t m = 0; m < mix; ++m) mixes[t * mix + m] *= r;
  }
}

}  // namespace

void hc_coeffs(const ModelConfig& c, const HcWeights& site, const float* X, int64_t n, float* pre, float* post,
               float* comb, Workspace& ws) {
  const int64_t hc = c.hc_mult, mix = c.hc_mix_dim();
  float* mixes = ws.mixes.get(static_cast<size_t>(n * mix));
  // The coefficient math is FP32 in both modes.
  hc_mixes(c, site, X, n, mixes, mix, Numerics::kReference);
  const float s0 = f32_at(site.scale, 0), s1 = f32_at(site.scale, 1), s2 = f32_at(site.scale, 2);
  const float eps = static_cast<float>(c.hc_eps);
  for (int64_t t = 0; t < n; ++t) {
    const float* mx = mixes + t * mix;
    for (int64_t j = 0; j < hc; ++j) {
      pre[t * hc + j] = sigmoid_f32(mx[j] * s0 + f32_at(site.base, j)) + eps;
      post[t * hc + j] = 2.0f * sigmoid_f32(mx[hc + j] * s1 + f32_at(site.base, hc + j));
    }
    float* cm = comb + t * hc * hc;
    for (int64_t k = 0; k < hc * hc; ++k) cm[k] = mx[2 * hc + k] * s2 + f32_at(site.base, 2 * hc + k);
    sinkhorn_project(cm, hc, c.hc_sinkhorn_iters, eps);
  }
}

void hc_collapse(const ModelConfig& c, const float* X, const float* pre, int64_t n, float* y, Numerics nm) {
  const int64_t hc = c.hc_mult, D = c.dim;
  for (int64_t t = 0; t < n; ++t) {
    float* yt = y + t * D;
    const float* xt = X + t * hc * D;
    const float* p = pre + t * hc;
    for (int64_t d = 0; d < D; ++d) {
      float s = p[0] * xt[d];
      for (int64_t j = 1; j < hc; ++j) s += p[j] * xt[j * D + d];
      yt[d] = s;
    }
    round_ref(yt, D, nm);
  }
}

void hc_expand(const ModelConfig& c, const float* f, const float* X, const float* post, const float* comb, int64_t n,
               float* Xout, Numerics nm) {
  const int64_t hc = c.hc_mult, D = c.dim;
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = X + t * hc * D;
    const float* ft = f + t * D;
    const float* cm = comb + t * hc * hc;
    for (int64_t k = 0; k < hc; ++k) {
      float* o = Xout + (t * hc + k) * D;
      const float pk = post[t * hc + k];
      for (int64_t d = 0; d < D; ++d) {
        float s = cm[0 * hc + k] * xt[d];
        for (int64_t j = 1; j < hc; ++j) s += cm[j * hc + k] * xt[j * D + d];
        o[d] = pk * ft[d] + s;
      }
      round_ref(o, D, nm);
    }
  }
}

void hc_head(const ModelConfig& c, const HcWeights& site, const float* X, int64_t n, float* y, Numerics nm,
             Workspace& ws) {
  const int64_t hc = c.hc_mult;
  float* mixes = ws.mixes.get(static_cast<size_t>(n * hc));
  hc_mixes(c, site, X, n, mixes, hc, Numerics::kReference);
  float* pre = ws.pre.get(static_cast<size_t>(n * hc));
  const float s0 = f32_at(site.scale, 0), eps = static_cast<float>(c.hc_eps);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < hc; ++j) pre[t * hc + j] = sigmoid_f32(mixes[t * hc + j] * s0 + f32_at(site.base, j)) + eps;
  hc_collapse(c, X, pre, n, y, nm);
}

}  // namespace dsv4

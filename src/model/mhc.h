// Manifold-constrained hyper-connections (mHC, spec 3.2 and 3.8): the hc_mult residual
// streams X [n, hc, D] are collapsed into one sublayer input and expanded again.
#pragma once
#include <cstdint>

#include "model/config.h"
#include "model/state.h"
#include "model/weights.h"
#include "ops/numerics.h"

namespace dsv4 {

// Mixing coefficients of one site for n tokens: pre [n, hc], post [n, hc],
// comb [n, hc, hc] (comb[j, k] = weight of input stream j in output stream k).
void hc_coeffs(const ModelConfig& c, const HcWeights& site, const float* X, int64_t n, float* pre, float* post,
               float* comb, Workspace& ws);

// y[t] = sum_j pre[t, j] X[t, j] (FP32), BF16 in reference mode. y: [n, D].
void hc_collapse(const ModelConfig& c, const float* X, const float* pre, int64_t n, float* y, Numerics nm);

// Xout[t, k] = post[t, k] f[t] + sum_j comb[t, j, k] X[t, j] (FP32), BF16 in reference mode.
// Xout must not alias X.
void hc_expand(const ModelConfig& c, const float* f, const float* X, const float* post, const float* comb, int64_t n,
               float* Xout, Numerics nm);

// hc_head: y[t] = sum_j (sigmoid(mix_j * scale + base_j) + hc_eps) X[t, j]; y: [n, D].
void hc_head(const ModelConfig& c, const HcWeights& site, const float* X, int64_t n, float* y, Numerics nm,
             Workspace& ws);

}  // namespace dsv4

#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dsv4::train {

std::string loss_curve_svg(const std::vector<std::pair<int64_t, double>>& train,
                           const std::vector<std::pair<int64_t, double>>& val) {
  const double W = 640, H = 400, L = 60, R = 20, T = 20, Bm = 40;
  double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
  for (const auto* s : {&train, &val})
    for (const auto& [x, y] : *s) {
      if (!std::isfinite(y)) continue;
      x1 = std::max(x1, static_cast<double>(x));
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  if (!(y0 <= y1)) y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - Bm); };
  char b[256];
  std::string s;
  std::snprintf(b, sizeof b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
  s += b;
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::snprintf(b, sizeof b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - Bm, W - R, H - Bm);
  s += b;
  std::snprintf(b, sizeof b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, H - Bm);
  s += b;
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4;
    std::snprintf(b, sizeof b, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 4, py(y) + 4, y);
    s += b;
  }
  std::snprintf(b, sizeof b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step (last %.0f)</text>\n", (L + W - R) / 2, H - 10, x1);
  s += b;
  auto line = [&](const std::vector<std::pair<int64_t, double>>& pts, const char* color, const char* label, int row) {
    if (pts.empty()) return;
    s += "<polyline fill=\"none\" stroke=\"";
    s += color;
    s += "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : pts) {
      if (!std::isfinite(y)) continue;
      std::snprintf(b, sizeof b, "%.1f,%.1f ", px(static_cast<double>(x)), py(y));
      s += b;
    }
    s += "\"/>\n";
    std::snprintf(b, sizeof b, "<text x=\"%.0f\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 150, 20 + 16 * row, color, label);
    s += b;
  };
  line(train, "#1f77b4", "train loss", 0);
  line(val, "#d62728", "held-out loss", 1);
  s += "</svg>\n";
  return s;
}

}  // namespace dsv4::train

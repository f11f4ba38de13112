// The loss curve of a run as a self-contained SVG (no torch).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dsv4::train {

// train: (step, loss) points; val: (step, held-out loss) points (may be empty).
std::string loss_curve_svg(const std::vector<std::pair<int64_t, double>>& train,
                           const std::vector<std::pair<int64_t, double>>& val);

}  // namespace dsv4::train

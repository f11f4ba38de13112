// The `dsv4 eval` bar chart: accuracy per suite (x) and reasoning mode (one bar per mode in
// each group), 95% Wilson intervals as error bars, y axis 0-100%, legend. SVG only (no PNG
// encoder in the dependencies).
#pragma once
#include <string>
#include <vector>

#include "train/eval/report.h"

namespace dsv4::eval {

struct ChartLayout {
  double plot_height = 260.0;  // pixels of 100% accuracy
  double bar_width = 22.0;
  double group_gap = 28.0;
};

// Bars are <rect class="bar" data-suite=.. data-mode=.. data-accuracy=..>, error bars
// <line class="ci">, in `summaries` order (group by suite as summarize() does).
std::string chart_svg(const std::vector<Summary>& summaries, const std::string& title, const ChartLayout& layout = {});
// Writes the chart atomically; PATH must end in .svg (PNG is not supported: throws Error).
void write_chart(const std::string& path, const std::vector<Summary>& summaries, const std::string& title);

}  // namespace dsv4::eval

#include "train/eval/chart.h"

#include <algorithm>
#include <cstdio>

#include "base/error.h"
#include "base/file.h"
#include "train/eval/modes.h"

namespace dsv4::eval {
namespace {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// One colour per mode (colour-blind-safe palette).
const char* mode_colour(tasks::Mode m) {
  switch (m) {
    case tasks::Mode::NonThink: return "#999999";
    case tasks::Mode::ThinkHigh: return "#0072b2";
    case tasks::Mode::ThinkMax: return "#d55e00";
  }
  return "#000000";
}

}  // namespace

std::string chart_svg(const std::vector<Summary>& summaries, const std::string& title, const ChartLayout& L) {
  std::vector<std::string> suites;
  std::vector<tasks::Mode> modes;
  for (const Summary& s : summaries) {
    if (std::find(suites.begin(), suites.end(), s.suite) == suites.end()) suites.push_back(s.suite);
    if (std::find(modes.begin(), modes.end(), s.mode) == modes.end()) modes.push_back(s.mode);
  }
  const double left = 64.0, top = 48.0, legend_w = 130.0;
  const double group_w = static_cast<double>(std::max<size_t>(modes.size(), 1)) * L.bar_width;
  const double plot_w = static_cast<double>(suites.size()) * (group_w + L.group_gap) + L.group_gap;
  const double width = left + plot_w + legend_w;
  const double height = top + L.plot_height + 70.0;
  const double y0 = top + L.plot_height;  // the 0% line
  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" viewBox=\"0 0 " +
       num(width) + " " + num(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) + "\" fill=\"white\"/>\n";
  o += "<text class=\"title\" x=\"" + num(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + xml_escape(title) + "</text>\n";
  // y axis: grid lines and labels every 20%.
  for (int p = 0; p <= 100; p += 20) {
    const double y = y0 - L.plot_height * p / 100.0;
    o += "<line class=\"grid\" x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" + num(y) +
         "\" stroke=\"#dddddd\"/>\n";
    o += "<text class=\"ytick\" x=\"" + num(left - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" + std::to_string(p) + "%</text>\n";
  }
  o += "<line class=\"axis\" x1=\"" + num(left) + "\" y1=\"" + num(top) + "\" x2=\"" + num(left) + "\" y2=\"" + num(y0) + "\" stroke=\"black\"/>\n";
  o += "<line class=\"axis\" x1=\"" + num(left) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" + num(y0) +
       "\" stroke=\"black\"/>\n";
  o += "<text class=\"ylabel\" transform=\"translate(16 " + num(top + L.plot_height / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">accuracy (95% CI)</text>\n";
  o += "<text class=\"xlabel\" x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(height - 12) + "\" text-anchor=\"middle\">suite</text>\n";
  for (size_t g = 0; g < suites.size(); ++g) {
    const double gx = left + L.group_gap + static_cast<double>(g) * (group_w + L.group_gap);
    o += "<text class=\"xtick\" x=\"" + num(gx + group_w / 2) + "\" y=\"" + num(y0 + 18) + "\" text-anchor=\"middle\">" +
         xml_escape(suites[g]) + "</text>\n";
  }
  for (const Summary& s : summaries) {
    const size_t g = static_cast<size_t>(std::find(suites.begin(), suites.end(), s.suite) - suites.begin());
    const size_t k = static_cast<size_t>(std::find(modes.begin(), modes.end(), s.mode) - modes.begin());
    const double x = left + L.group_gap + static_cast<double>(g) * (group_w + L.group_gap) + static_cast<double>(k) * L.bar_width;
    const double h = L.plot_height * s.accuracy;
    o += "<rect class=\"bar\" data-suite=\"" + xml_escape(s.suite) + "\" data-mode=\"" + mode_key(s.mode) + "\" data-accuracy=\"" +
         num(s.accuracy) + "\" x=\"" + num(x + 1) + "\" y=\"" + num(y0 - h) + "\" width=\"" + num(L.bar_width - 2) + "\" height=\"" +
         num(h) + "\" fill=\"" + mode_colour(s.mode) + "\"><title>" + xml_escape(s.suite) + " " + mode_key(s.mode) + ": " +
         std::to_string(s.correct) + "/" + std::to_string(s.n) + "</title></rect>\n";
    const double cx = x + L.bar_width / 2;
    const double ylo = y0 - L.plot_height * s.ci.lo, yhi = y0 - L.plot_height * s.ci.hi;
    o += "<line class=\"ci\" x1=\"" + num(cx) + "\" y1=\"" + num(ylo) + "\" x2=\"" + num(cx) + "\" y2=\"" + num(yhi) + "\" stroke=\"black\"/>\n";
    for (double y : {ylo, yhi})
      o += "<line class=\"ci-cap\" x1=\"" + num(cx - 4) + "\" y1=\"" + num(y) + "\" x2=\"" + num(cx + 4) + "\" y2=\"" + num(y) +
           "\" stroke=\"black\"/>\n";
  }
  // Legend: one swatch per mode.
  const double lx = left + plot_w + 16;
  for (size_t k = 0; k < modes.size(); ++k) {
    const double ly = top + 8 + static_cast<double>(k) * 20;
    o += "<rect class=\"legend\" data-mode=\"" + std::string(mode_key(modes[k])) + "\" x=\"" + num(lx) + "\" y=\"" + num(ly) +
         "\" width=\"12\" height=\"12\" fill=\"" + mode_colour(modes[k]) + "\"/>\n";
    o += "<text x=\"" + num(lx + 18) + "\" y=\"" + num(ly + 10) + "\">" + mode_key(modes[k]) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

void write_chart(const std::string& path, const std::vector<Summary>& summaries, const std::string& title) {
  auto ends_with = [&](const char* suf) {
    const std::string s(suf);
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".png"))
    throw Error("--chart " + path + ": PNG output is not supported (no PNG encoder in the dependencies); use a .svg path");
  if (!ends_with(".svg")) throw Error("--chart " + path + ": the chart path must end in .svg");
  write_file_atomic(path, chart_svg(summaries, title));
}

}  // namespace dsv4::eval

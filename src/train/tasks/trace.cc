// Worked column arithmetic for the reasoning traces (math suites, tools): one line per digit
// column with the carry or borrow written out, so a small model can learn the procedure.
#include <algorithm>
#include <string>

#include "base/error.h"
#include "train/tasks/gen.h"

namespace dsv4::tasks::gen {

namespace {

const char* kPlace[] = {"ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands",
                        "millions"};

std::string place(size_t i) { return i < 7 ? kPlace[i] : "column " + std::to_string(i + 1); }

std::vector<int> digits(int64_t v) {  // least significant first
  std::vector<int> d;
  do {
    d.push_back(static_cast<int>(v % 10));
    v /= 10;
  } while (v > 0);
  return d;
}

}  // namespace

std::string add_trace(int64_t a, int64_t b) {
  if (a < 0 || b < 0) throw Error("add_trace: negative operand");
  const auto da = digits(a), db = digits(b);
  const size_t n = std::max(da.size(), db.size());
  std::string s;
  int carry = 0;
  for (size_t i = 0; i < n; ++i) {
    const int x = i < da.size() ? da[i] : 0, y = i < db.size() ? db[i] : 0;
    const int sum = x + y + carry;
    s += place(i) + ": " + std::to_string(x) + " + " + std::to_string(y);
    if (carry) s += " + " + std::to_string(carry);
    s += " = " + std::to_string(sum) + ", write " + std::to_string(sum % 10);
    carry = sum / 10;
    if (carry) s += ", carry " + std::to_string(carry);
    s += "\n";
  }
  if (carry) s += place(n) + ": write the carry " + std::to_string(carry) + "\n";
  s += "So " + std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(a + b) + ".";
  return s;
}

std::string sub_trace(int64_t a, int64_t b) {
  if (a < b || b < 0) throw Error("sub_trace: needs a >= b >= 0");
  const auto da = digits(a), db = digits(b);
  std::string s;
  int borrow = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    const int x = da[i] - borrow, y = i < db.size() ? db[i] : 0;
    s += place(i) + ": " + std::to_string(da[i]);
    if (borrow) s += " - 1";
    s += " - " + std::to_string(y);
    if (x < y) {
      s += ", borrow: " + std::to_string(x + 10) + " - " + std::to_string(y) + " = " + std::to_string(x + 10 - y);
      borrow = 1;
    } else {
      s += " = " + std::to_string(x - y);
      borrow = 0;
    }
    s += "\n";
  }
  s += "So " + std::to_string(a) + " - " + std::to_string(b) + " = " + std::to_string(a - b) + ".";
  return s;
}

std::string mul_trace(int64_t a, int64_t d) {
  if (a < 0 || d < 0 || d > 9) throw Error("mul_trace: needs a >= 0 and a one-digit multiplier");
  const auto da = digits(a);
  std::string s;
  int carry = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    const int p = da[i] * static_cast<int>(d) + carry;
    s += place(i) + ": " + std::to_string(da[i]) + " x " + std::to_string(d);
    if (carry) s += " + " + std::to_string(carry);
    s += " = " + std::to_string(p) + ", write " + std::to_string(p % 10);
    carry = p / 10;
    if (carry) s += ", carry " + std::to_string(carry);
    s += "\n";
  }
  if (carry) s += place(da.size()) + ": write the carry " + std::to_string(carry) + "\n";
  s += "So " + std::to_string(a) + " x " + std::to_string(d) + " = " + std::to_string(a * d) + ".";
  return s;
}

std::string mul_check_trace(int64_t a, int64_t d) {
  const auto da = digits(a);
  std::string parts, sum_line;
  int64_t scale = 1, total = 0;
  std::vector<int64_t> terms;
  for (size_t i = 0; i < da.size(); ++i, scale *= 10) {
    if (da[i] == 0) continue;
    terms.push_back(da[i] * scale * d);
  }
  std::reverse(terms.begin(), terms.end());
  scale = 1;
  std::vector<std::string> lines;
  for (size_t i = 0; i < da.size(); ++i, scale *= 10) {
    if (da[i] == 0) continue;
    lines.push_back(std::to_string(da[i] * scale) + " x " + std::to_string(d) + " = " +
                    std::to_string(da[i] * scale * d));
  }
  std::reverse(lines.begin(), lines.end());
  for (const auto& l : lines) parts += l + "\n";
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i == 0) {
      total = terms[0];
      continue;
    }
    parts += std::to_string(total) + " + " + std::to_string(terms[i]) + " = " + std::to_string(total + terms[i]) + "\n";
    total += terms[i];
  }
  parts += "Both ways give " + std::to_string(a * d) + ".";
  return parts;
}

}  // namespace dsv4::tasks::gen

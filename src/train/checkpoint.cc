#include "train/checkpoint.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace dsv4::train {

using nlohmann::json;

std::string run_identity(const RunConfig& r) {
  json j{{"seq_len", r.seq_len}, {"batch", r.batch}, {"seed", r.seed}, {"muon", r.muon}};
  if (r.sft) j["objective"] = "sft";  // absent for "lm": checkpoints of earlier runs still resume
  return j.dump();
}

namespace {
TensorData bytes_tensor(const std::string& name, const std::string& s) {
  TensorData t{name, DType::U8, {static_cast<int64_t>(s.size())}, std::vector<uint8_t>(s.begin(), s.end())};
  return t;
}
std::string read_text(const TensorStore& st, const std::string& name, const std::string& path) {
  const Tensor* t = st.find(name);
  if (!t || t->dtype != DType::U8) throw Error(path + ": not a dsv4 trainer checkpoint (missing " + name + ")");
  return std::string(reinterpret_cast<const char*>(t->data), t->nbytes);
}
// First key whose value differs between two JSON objects ("" when equal).
std::string first_difference(const json& a, const json& b) {
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b[it.key()] != it.value()) return it.key();
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) return it.key();
  return "";
}
}  // namespace

void append_meta(std::vector<TensorData>& out, const CheckpointMeta& m) {
  out.push_back(TensorData::i64("meta.step", {1}, &m.step));
  out.push_back(bytes_tensor("meta.model_config", m.model_config));
  out.push_back(bytes_tensor("meta.run", m.run));
}

CheckpointMeta read_meta(const TensorStore& st, const std::string& path) {
  CheckpointMeta m;
  const Tensor* s = st.find("meta.step");
  if (!s || s->dtype != DType::I64 || s->numel() != 1) throw Error(path + ": not a dsv4 trainer checkpoint (missing meta.step)");
  std::memcpy(&m.step, s->data, 8);
  m.model_config = read_text(st, "meta.model_config", path);
  m.run = read_text(st, "meta.run", path);
  return m;
}

void check_resume(const CheckpointMeta& m, const RunConfig& r, const std::string& model_config, const std::string& path) {
  json a, b;
  try {
    a = json::parse(m.model_config);
    b = json::parse(model_config);
  } catch (const json::exception& e) {
    throw Error(path + ": unreadable meta.model_config: " + e.what());
  }
  std::string d = first_difference(a, b);
  if (!d.empty())
    throw Error("resume: " + path + " was written for another model: config field " + d + " is " +
                (a.contains(d) ? a[d].dump() : "absent") + " there and " + (b.contains(d) ? b[d].dump() : "absent") +
                " in " + r.source);
  const json ra = json::parse(m.run), rb = json::parse(run_identity(r));
  d = first_difference(ra, rb);
  if (!d.empty())
    throw Error("resume: " + path + " was written with " + d + " = " + (ra.contains(d) ? ra[d].dump() : "absent") +
                ", " + r.source + " says " + (rb.contains(d) ? rb[d].dump() : "absent") +
                " (a resumed run must keep seq_len, batch, seed and muon)");
}

}  // namespace dsv4::train

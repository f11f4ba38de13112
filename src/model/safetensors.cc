#include "model/safetensors.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace dsv4 {

using nlohmann::json;

namespace {
// Headers of real checkpoints are a few MB at most (Flash: ~1500 tensors per shard).
constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}
}  // namespace

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void TensorStore::add_file(const std::string& path, FileMemory memory) {
  auto map = std::make_unique<MappedFile>(path, memory);
  const uint8_t* base = map->data();
  const uint64_t size = map->size();
  if (size < 8) throw Error(path + ": truncated safetensors file (" + std::to_string(size) + " bytes, no header length)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);  // little-endian hosts only (x86-64, aarch64)
  if (header_len > kMaxHeaderBytes) throw Error(path + ": safetensors header length " + std::to_string(header_len) + " is implausible");
  if (header_len > size - 8)
    throw Error(path + ": truncated safetensors file: header needs " + std::to_string(header_len) + " bytes, file has " + std::to_string(size - 8));
  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(base + 8), reinterpret_cast<const char*>(base + 8 + header_len));
  } catch (const std::exception& e) {
    throw Error(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data_base = base + 8 + header_len;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const json& e = it.value();
    auto fail = [&](const std::string& why) { throw Error(path + ": tensor " + name + ": " + why); };
    if (!e.is_object()) fail("header entry is not an object");
    if (!e.contains("dtype") || !e["dtype"].is_string()) fail("missing dtype");
    auto dt = dtype_from_name(e["dtype"].get<std::string>());
    if (!dt) fail("unknown dtype " + e["dtype"].get<std::string>());
    if (!e.contains("shape") || !e["shape"].is_array()) fail("missing shape");
    Tensor t;
    t.name = name;
    t.dtype = *dt;
    t.file = path;
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned()) fail("shape has a non-integer or negative dimension");
      uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40)) fail("shape dimension too large");
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) fail("shape overflows");
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2 ||
        !e["data_offsets"][0].is_number_unsigned() || !e["data_offsets"][1].is_number_unsigned())
      fail("missing or malformed data_offsets");
    uint64_t b = e["data_offsets"][0].get<uint64_t>();
    uint64_t en = e["data_offsets"][1].get<uint64_t>();
    if (b > en) fail("data_offsets begin > end");
    if (en > data_size)
      fail("data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + ") exceed the data section (" + std::to_string(data_size) + " bytes): file truncated or header lies");
    uint64_t want = numel * dtype_size(t.dtype);
    if (numel != 0 && want / numel != dtype_size(t.dtype)) fail("byte size overflows");
    if (en - b != want)
      fail("data_offsets span " + std::to_string(en - b) + " bytes but " + std::string(dtype_name(t.dtype)) + " " + t.shape_str() + " needs " + std::to_string(want));
    t.data = data_base + b;
    t.nbytes = en - b;
    if (tensors_.count(name)) throw Error(path + ": tensor " + name + " also stored in " + tensors_[name].file);
    ranges.push_back({b, en, name});
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end && ranges[i].end > ranges[i].begin)
      throw Error(path + ": tensors " + ranges[i - 1].name + " and " + ranges[i].name + " have overlapping data_offsets");
  }
  files_.push_back(path);
  maps_.push_back(std::move(map));
}

TensorStore TensorStore::from_views(std::vector<Tensor> tensors, std::vector<std::string> files,
                                    std::vector<std::shared_ptr<const void>> owners) {
  TensorStore s;
  s.files_ = std::move(files);
  s.owners_ = std::move(owners);
  for (Tensor& t : tensors) {
    std::string name = t.name;
    if (!s.tensors_.emplace(name, std::move(t)).second) throw Error("duplicate tensor " + name);
  }
  return s;
}

TensorStore TensorStore::open_file(const std::string& path, FileMemory memory) {
  TensorStore s;
  s.add_file(path, memory);
  return s;
}

TensorStore TensorStore::open_dir(const std::string& dir, FileMemory memory) {
  TensorStore s;
  const std::string index_path = join_path(dir, "model.safetensors.index.json");
  if (file_exists(index_path)) {
    json index;
    try {
      index = json::parse(read_file(index_path));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(index_path + ": not valid JSON: " + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error(index_path + ": missing weight_map object");
    std::vector<std::string> shards;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(index_path + ": weight_map entry " + it.key() + " is not a file name");
      std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f == ".." || f.empty())
        throw Error(index_path + ": weight_map entry " + it.key() + " names a bad file '" + f + "'");
      if (std::find(shards.begin(), shards.end(), f) == shards.end()) shards.push_back(f);
    }
    std::sort(shards.begin(), shards.end());
    for (const auto& f : shards) s.add_file(join_path(dir, f), memory);
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      const Tensor* t = s.find(it.key());
      std::string f = join_path(dir, it.value().get<std::string>());
      if (!t) throw Error(f + ": missing tensor " + it.key() + " (listed in model.safetensors.index.json)");
      if (t->file != f) throw Error(t->file + ": tensor " + it.key() + " is stored here but the index says " + f);
    }
    for (const auto& [name, t] : s.tensors_)
      if (!index["weight_map"].contains(name)) throw Error(t.file + ": tensor " + name + " is not listed in model.safetensors.index.json");
  } else {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw Error(dir + ": cannot open model directory");
    while (dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) names.push_back(n);
    }
    ::closedir(d);
    if (names.empty()) throw Error(dir + ": no *.safetensors files and no model.safetensors.index.json");
    std::sort(names.begin(), names.end());
    for (const auto& n : names) s.add_file(join_path(dir, n), memory);
  }
  return s;
}

const Tensor* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const Tensor& TensorStore::get(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) throw Error((files_.empty() ? std::string("<no files>") : files_.front()) + ": missing tensor " + name);
  return *t;
}

std::vector<float> TensorStore::read_f32(const std::string& name) const {
  const Tensor& t = get(name);
  if (t.dtype != DType::F32) throw Error(t.file + ": tensor " + name + " is " + std::string(dtype_name(t.dtype)) + ", expected F32");
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

std::vector<int64_t> TensorStore::read_i64(const std::string& name) const {
  const Tensor& t = get(name);
  if (t.dtype != DType::I64) throw Error(t.file + ": tensor " + name + " is " + std::string(dtype_name(t.dtype)) + ", expected I64");
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

TensorData TensorData::f32(std::string name, std::vector<int64_t> shape, const float* values) {
  TensorData t{std::move(name), DType::F32, std::move(shape), {}};
  int64_t n = 1;
  for (auto d : t.shape) n *= d;
  t.bytes.resize(static_cast<size_t>(n) * 4);
  if (n) std::memcpy(t.bytes.data(), values, t.bytes.size());
  return t;
}

TensorData TensorData::i64(std::string name, std::vector<int64_t> shape, const int64_t* values) {
  TensorData t{std::move(name), DType::I64, std::move(shape), {}};
  int64_t n = 1;
  for (auto d : t.shape) n *= d;
  t.bytes.resize(static_cast<size_t>(n) * 8);
  if (n) std::memcpy(t.bytes.data(), values, t.bytes.size());
  return t;
}

std::string serialize_safetensors(const std::vector<TensorData>& tensors, const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    if (static_cast<uint64_t>(n) * dtype_size(t.dtype) != t.bytes.size())
      throw Error("serialize_safetensors: tensor " + t.name + " has " + std::to_string(t.bytes.size()) + " bytes, shape needs " +
                  std::to_string(n * static_cast<int64_t>(dtype_size(t.dtype))));
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // keep the data section 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + off);
  uint64_t hl = h.size();
  out.append(reinterpret_cast<const char*>(&hl), 8);
  out += h;
  for (const auto& t : tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors, const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace dsv4

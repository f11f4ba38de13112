#include "model/gguf.h"

#include <algorithm>
#include <cstring>
#include <regex>

#include "base/error.h"

namespace dsv4 {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS

const char* value_type_name(uint32_t t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  return t < 13 ? names[t] : "unknown";
}

// Bounds-checked little-endian reader over one file image.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(name_ + ": " + what + " (at byte " + std::to_string(pos_) + " of " + std::to_string(size_) + ")");
  }
  void need(size_t n, const std::string& what) const {
    if (n > remaining()) fail("truncated file: " + what + " needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left");
  }
  template <typename T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t n = get<uint64_t>(what + " length");
    if (n > remaining()) fail("truncated file: " + what + " has length " + std::to_string(n) + ", " + std::to_string(remaining()) + " bytes left");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

int64_t scalar_int(Reader& r, GgufValueType t, const std::string& what) {
  switch (t) {
    case GgufValueType::kU8: return r.get<uint8_t>(what);
    case GgufValueType::kI8: return r.get<int8_t>(what);
    case GgufValueType::kU16: return r.get<uint16_t>(what);
    case GgufValueType::kI16: return r.get<int16_t>(what);
    case GgufValueType::kU32: return r.get<uint32_t>(what);
    case GgufValueType::kI32: return r.get<int32_t>(what);
    case GgufValueType::kI64: return r.get<int64_t>(what);
    case GgufValueType::kU64: {
      const uint64_t v = r.get<uint64_t>(what);
      if (v > static_cast<uint64_t>(INT64_MAX)) r.fail(what + ": u64 value " + std::to_string(v) + " out of range");
      return static_cast<int64_t>(v);
    }
    case GgufValueType::kBool: {
      const uint8_t v = r.get<uint8_t>(what);
      if (v > 1) r.fail(what + ": bool value " + std::to_string(v));
      return v;
    }
    default: break;
  }
  r.fail(what + ": not an integer type");
}

bool is_int_type(GgufValueType t) {
  return t != GgufValueType::kF32 && t != GgufValueType::kF64 && t != GgufValueType::kString && t != GgufValueType::kArray;
}
size_t min_elem_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    default: return 8;  // 64-bit scalars; a string's length field
  }
}

GgufValue read_value(Reader& r, uint32_t raw_type, const std::string& key, bool in_array) {
  const std::string what = "value of key '" + key + "'";
  if (raw_type > 12) r.fail("key '" + key + "' has unknown value type " + std::to_string(raw_type));
  GgufValue v;
  v.type = static_cast<GgufValueType>(raw_type);
  switch (v.type) {
    case GgufValueType::kF32: v.f = r.get<float>(what); break;
    case GgufValueType::kF64: v.f = r.get<double>(what); break;
    case GgufValueType::kString: v.s = r.str(what); break;
    case GgufValueType::kArray: {
      if (in_array) r.fail("key '" + key + "' has a nested array (not supported)");
      const uint32_t et = r.get<uint32_t>(what + " element type");
      if (et > 12 || et == 9) r.fail("key '" + key + "' is an array of unsupported element type " + std::to_string(et));
      v.elem = static_cast<GgufValueType>(et);
      const uint64_t n = r.get<uint64_t>(what + " element count");
      // Every element takes at least min_elem_bytes: a count beyond that is a truncated or
      // corrupt file, caught before allocating for it.
      if (n > r.remaining() / min_elem_bytes(v.elem))
        r.fail("truncated file: key '" + key + "' claims " + std::to_string(n) + " " + value_type_name(et) + " elements, " +
               std::to_string(r.remaining()) + " bytes left");
      if (v.elem == GgufValueType::kString) {
        v.strings.reserve(static_cast<size_t>(n));
        for (uint64_t k = 0; k < n; ++k) v.strings.push_back(r.str(what + " element " + std::to_string(k)));
      } else if (v.elem == GgufValueType::kF32 || v.elem == GgufValueType::kF64) {
        v.floats.reserve(static_cast<size_t>(n));
        for (uint64_t k = 0; k < n; ++k)
          v.floats.push_back(v.elem == GgufValueType::kF32 ? r.get<float>(what) : r.get<double>(what));
      } else {
        v.ints.reserve(static_cast<size_t>(n));
        for (uint64_t k = 0; k < n; ++k) v.ints.push_back(scalar_int(r, v.elem, what + " element " + std::to_string(k)));
      }
      break;
    }
    default: v.i = scalar_int(r, v.type, what); break;
  }
  return v;
}

std::string shape_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

}  // namespace

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}
std::string GgufTensor::ne_str() const { return shape_string(ne); }

bool is_gguf_path(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

void GgufFile::parse_part(const uint8_t* data, size_t size, const std::string& name, bool first) {
  Reader r(data, size, name);
  const uint32_t magic = r.get<uint32_t>("magic");
  if (magic != kMagic) r.fail("not a GGUF file (bad magic)");
  const uint32_t version = r.get<uint32_t>("version");
  if (version != 2 && version != 3) {
    // A big-endian file reads its version byte-swapped.
    if ((version & 0xFFFF) == 0 && version != 0) r.fail("big-endian GGUF files are not supported");
    r.fail("unsupported GGUF version " + std::to_string(version) + " (2 and 3 are supported)");
  }
  if (first) version_ = version;
  const uint64_t n_tensors = r.get<uint64_t>("tensor count");
  const uint64_t n_kv = r.get<uint64_t>("metadata count");
  // A key needs >= 12 bytes (length + type), a tensor info >= 24: reject absurd counts early.
  if (n_kv > r.remaining() / 12) r.fail("truncated file: metadata count " + std::to_string(n_kv) + " exceeds the file");
  if (n_tensors > r.remaining() / 24) r.fail("truncated file: tensor count " + std::to_string(n_tensors) + " exceeds the file");

  std::map<std::string, GgufValue> kv;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str("key " + std::to_string(k));
    if (key.empty()) r.fail("metadata key " + std::to_string(k) + " is empty");
    const uint32_t type = r.get<uint32_t>("type of key '" + key + "'");
    GgufValue v = read_value(r, type, key, false);
    if (!kv.emplace(key, std::move(v)).second) r.fail("duplicate metadata key '" + key + "'");
  }
  int64_t alignment = 32;
  if (auto it = kv.find("general.alignment"); it != kv.end()) {
    const GgufValue& a = it->second;
    if (a.is_array() || !is_int_type(a.type) || a.type == GgufValueType::kBool) r.fail("key 'general.alignment' is not an integer");
    if (a.i <= 0 || (a.i & (a.i - 1)) != 0 || a.i > (1 << 20)) r.fail("key 'general.alignment' = " + std::to_string(a.i) + " is not a power of two");
    alignment = a.i;
  }
  if (first) {
    alignment_ = alignment;
    kv_ = std::move(kv);
  } else {
    for (auto& [key, v] : kv)
      if (!kv_.count(key)) kv_.emplace(key, std::move(v));  // the first part's values win
  }

  struct Info {
    GgufTensor t;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    Info in;
    in.t.name = r.str("name of tensor " + std::to_string(k));
    const std::string& tn = in.t.name;
    if (tn.empty()) r.fail("tensor " + std::to_string(k) + " has an empty name");
    const uint32_t nd = r.get<uint32_t>("dimension count of tensor " + tn);
    if (nd == 0 || nd > kMaxDims) r.fail("tensor " + tn + " has " + std::to_string(nd) + " dimensions (1 to 4 allowed)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t e = r.get<uint64_t>("shape of tensor " + tn);
      if (e == 0 || e > (uint64_t{1} << 40)) r.fail("tensor " + tn + " has dimension " + std::to_string(d) + " = " + std::to_string(e));
      in.t.ne.push_back(static_cast<int64_t>(e));
      if (numel > (int64_t{1} << 50) / static_cast<int64_t>(e)) r.fail("tensor " + tn + " has too many elements " + in.t.ne_str());
      numel *= static_cast<int64_t>(e);
    }
    const uint32_t type = r.get<uint32_t>("type of tensor " + tn);
    const auto info = ggml_type_info(type);
    if (!info) r.fail("tensor " + tn + " has unknown ggml type " + std::to_string(type));
    in.t.type = static_cast<GgmlType>(type);
    if (in.t.ne[0] % info->block != 0)
      r.fail("tensor " + tn + " of type " + info->name + " has a row of " + std::to_string(in.t.ne[0]) +
             " elements, not a multiple of the block size " + std::to_string(info->block));
    in.t.nbytes = numel / info->block * info->block_bytes;
    in.offset = r.get<uint64_t>("data offset of tensor " + tn);
    if (in.offset % static_cast<uint64_t>(alignment) != 0)
      r.fail("tensor " + tn + " has data offset " + std::to_string(in.offset) + ", not a multiple of the alignment " + std::to_string(alignment));
    in.t.file = name;
    infos.push_back(std::move(in));
  }
  const size_t data_start = (r.pos() + static_cast<size_t>(alignment) - 1) / static_cast<size_t>(alignment) * static_cast<size_t>(alignment);
  const size_t data_size = size >= data_start ? size - data_start : 0;
  // Ranges must lie inside the data section and not overlap.
  std::vector<const Info*> order;
  for (const Info& in : infos) {
    if (in.offset > data_size || static_cast<uint64_t>(in.t.nbytes) > data_size - in.offset)
      throw Error(name + ": truncated file: tensor " + in.t.name + " (" + ggml_type_name(static_cast<uint32_t>(in.t.type)) + " " +
                  in.t.ne_str() + ", " + std::to_string(in.t.nbytes) + " bytes at data offset " + std::to_string(in.offset) +
                  ") ends beyond the " + std::to_string(data_size) + " bytes of tensor data");
    order.push_back(&in);
  }
  std::sort(order.begin(), order.end(), [](const Info* a, const Info* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->offset + static_cast<uint64_t>(order[i - 1]->t.nbytes) > order[i]->offset)
      throw Error(name + ": tensors " + order[i - 1]->t.name + " and " + order[i]->t.name + " overlap");
  for (Info& in : infos) {
    in.t.data = data + data_start + in.offset;
    const std::string tn = in.t.name;
    if (!tensors_.emplace(tn, std::move(in.t)).second) throw Error(name + ": duplicate tensor " + tn);
  }
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile f;
  f.path_ = name;
  f.files_.push_back(name);
  f.parse_part(data, size, name, true);
  return f;
}

GgufFile GgufFile::open(const std::string& path, FileMemory memory) {
  GgufFile f;
  f.path_ = path;
  static const std::regex split(R"(^(.*)-(\d{5})-of-(\d{5})\.gguf$)");
  std::smatch m;
  std::vector<std::string> parts;
  if (std::regex_match(path, m, split)) {
    const int count = std::stoi(m[3].str());
    if (count < 1 || std::stoi(m[2].str()) < 1 || std::stoi(m[2].str()) > count)
      throw Error(path + ": bad split file name (part " + m[2].str() + " of " + m[3].str() + ")");
    for (int k = 1; k <= count; ++k) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "-%05d-of-%05d.gguf", k, count);
      parts.push_back(m[1].str() + buf);
    }
  } else {
    parts.push_back(path);
  }
  for (size_t k = 0; k < parts.size(); ++k) {
    if (!file_exists(parts[k])) throw Error(path + ": split part " + parts[k] + " is missing");
    auto map = std::make_shared<MappedFile>(parts[k], memory);
    f.parse_part(map->data(), map->size(), parts[k], k == 0);
    f.files_.push_back(parts[k]);
    f.maps.push_back(std::move(map));
    if (k == 0 && parts.size() > 1) {
      const int64_t declared = f.get_int("split.count", static_cast<int64_t>(parts.size()));
      if (declared != static_cast<int64_t>(parts.size()))
        throw Error(parts[0] + ": key 'split.count' = " + std::to_string(declared) + " but the file name says " + std::to_string(parts.size()) + " parts");
    }
  }
  if (f.has("split.tensors.count")) {
    const int64_t want = f.get_int("split.tensors.count");
    if (want != static_cast<int64_t>(f.tensors_.size()))
      throw Error(path + ": key 'split.tensors.count' = " + std::to_string(want) + " but the parts hold " + std::to_string(f.tensors_.size()) + " tensors");
  } else if (parts.size() > 1 && f.get_int("split.count", 1) != static_cast<int64_t>(parts.size())) {
    throw Error(path + ": split parts disagree on split.count");
  }
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}
const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}
void GgufFile::fail_key(const std::string& key, const std::string& what) const {
  throw Error(path_ + ": metadata key '" + key + "' " + what);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (v->is_array() || !is_int_type(v->type)) fail_key(key, std::string("is a ") + value_type_name(uint32_t(v->type)) + ", expected an integer");
  return v->i;
}
int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }
double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (v->type == GgufValueType::kF32 || v->type == GgufValueType::kF64) return v->f;
  if (!v->is_array() && is_int_type(v->type) && v->type != GgufValueType::kBool) return static_cast<double>(v->i);
  fail_key(key, std::string("is a ") + value_type_name(uint32_t(v->type)) + ", expected a number");
}
double GgufFile::get_float(const std::string& key, double fallback) const { return has(key) ? get_float(key) : fallback; }
bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  if (v->type != GgufValueType::kBool) fail_key(key, std::string("is a ") + value_type_name(uint32_t(v->type)) + ", expected a bool");
  return v->i != 0;
}
std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (v->type != GgufValueType::kString) fail_key(key, std::string("is a ") + value_type_name(uint32_t(v->type)) + ", expected a string");
  return v->s;
}
std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}
std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (!v->is_array() || !is_int_type(v->elem) || v->elem == GgufValueType::kBool) fail_key(key, "is not an array of integers");
  return v->ints;
}
std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (!v->is_array()) fail_key(key, "is not an array");
  if (v->elem == GgufValueType::kF32 || v->elem == GgufValueType::kF64) return v->floats;
  if (is_int_type(v->elem) && v->elem != GgufValueType::kBool) return std::vector<double>(v->ints.begin(), v->ints.end());
  fail_key(key, "is not an array of numbers");
}
const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "is missing");
  if (!v->is_array() || v->elem != GgufValueType::kString) fail_key(key, "is not an array of strings");
  return v->strings;
}

// ---- writing ----
namespace {
template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}
void put_scalar(std::string& out, GgufValueType t, int64_t i, double f) {
  switch (t) {
    case GgufValueType::kU8: put<uint8_t>(out, uint8_t(i)); break;
    case GgufValueType::kI8: put<int8_t>(out, int8_t(i)); break;
    case GgufValueType::kU16: put<uint16_t>(out, uint16_t(i)); break;
    case GgufValueType::kI16: put<int16_t>(out, int16_t(i)); break;
    case GgufValueType::kU32: put<uint32_t>(out, uint32_t(i)); break;
    case GgufValueType::kI32: put<int32_t>(out, int32_t(i)); break;
    case GgufValueType::kU64: put<uint64_t>(out, uint64_t(i)); break;
    case GgufValueType::kI64: put<int64_t>(out, i); break;
    case GgufValueType::kBool: put<uint8_t>(out, i ? 1 : 0); break;
    case GgufValueType::kF32: put<float>(out, float(f)); break;
    case GgufValueType::kF64: put<double>(out, f); break;
    default: throw Error("serialize_gguf: not a scalar type");
  }
}
}  // namespace

std::string serialize_gguf(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                           const std::vector<GgufWriteTensor>& tensors, int64_t alignment) {
  std::vector<GgufTensorInfo> infos;
  for (const GgufWriteTensor& t : tensors) infos.push_back({t.name, t.type, t.ne, static_cast<int64_t>(t.bytes.size())});
  std::string out = serialize_gguf_header(metadata, infos, alignment);
  for (const GgufWriteTensor& t : tensors) {
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    out.resize((out.size() + size_t(alignment) - 1) / size_t(alignment) * size_t(alignment), '\0');
  }
  return out;
}

std::string serialize_gguf_header(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                  const std::vector<GgufTensorInfo>& tensors, int64_t alignment) {
  std::string out;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  const bool write_alignment = alignment != 32;
  put<uint64_t>(out, metadata.size() + (write_alignment ? 1 : 0));
  if (write_alignment) {
    put_str(out, "general.alignment");
    put<uint32_t>(out, uint32_t(GgufValueType::kU32));
    put<uint32_t>(out, uint32_t(alignment));
  }
  for (const auto& [key, v] : metadata) {
    put_str(out, key);
    put<uint32_t>(out, uint32_t(v.type));
    if (v.type == GgufValueType::kString) {
      put_str(out, v.s);
    } else if (v.type == GgufValueType::kArray) {
      put<uint32_t>(out, uint32_t(v.elem));
      if (v.elem == GgufValueType::kString) {
        put<uint64_t>(out, v.strings.size());
        for (const std::string& s : v.strings) put_str(out, s);
      } else if (v.elem == GgufValueType::kF32 || v.elem == GgufValueType::kF64) {
        put<uint64_t>(out, v.floats.size());
        for (double f : v.floats) put_scalar(out, v.elem, 0, f);
      } else {
        put<uint64_t>(out, v.ints.size());
        for (int64_t i : v.ints) put_scalar(out, v.elem, i, 0);
      }
    } else {
      put_scalar(out, v.type, v.i, v.f);
    }
  }
  uint64_t offset = 0;
  for (const GgufTensorInfo& t : tensors) {
    put_str(out, t.name);
    put<uint32_t>(out, uint32_t(t.ne.size()));
    for (int64_t e : t.ne) put<uint64_t>(out, uint64_t(e));
    put<uint32_t>(out, uint32_t(t.type));
    put<uint64_t>(out, offset);
    offset += (uint64_t(t.nbytes) + uint64_t(alignment) - 1) / uint64_t(alignment) * uint64_t(alignment);
  }
  out.resize((out.size() + size_t(alignment) - 1) / size_t(alignment) * size_t(alignment), '\0');
  return out;
}

GgufValue gguf_u32(int64_t v) { GgufValue g; g.type = GgufValueType::kU32; g.i = v; return g; }
GgufValue gguf_i32(int64_t v) { GgufValue g; g.type = GgufValueType::kI32; g.i = v; return g; }
GgufValue gguf_f32(double v) { GgufValue g; g.type = GgufValueType::kF32; g.f = v; return g; }
GgufValue gguf_bool(bool v) { GgufValue g; g.type = GgufValueType::kBool; g.i = v; return g; }
GgufValue gguf_str(std::string v) { GgufValue g; g.type = GgufValueType::kString; g.s = std::move(v); return g; }
GgufValue gguf_i32_array(std::vector<int64_t> v) {
  GgufValue g; g.type = GgufValueType::kArray; g.elem = GgufValueType::kI32; g.ints = std::move(v); return g;
}
GgufValue gguf_f32_array(std::vector<double> v) {
  GgufValue g; g.type = GgufValueType::kArray; g.elem = GgufValueType::kF32; g.floats = std::move(v); return g;
}
GgufValue gguf_str_array(std::vector<std::string> v) {
  GgufValue g; g.type = GgufValueType::kArray; g.elem = GgufValueType::kString; g.strings = std::move(v); return g;
}

}  // namespace dsv4

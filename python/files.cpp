// load and save: MX safetensors (mx/io/mx_safetensors.h) and GGUF (mx/io/gguf.h). MX tensors
// come back as MxArrays and plain tensors as numpy arrays; files are written atomically.
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mx/io/atomic_file.h"
#include "mx/io/gguf.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"
#include "python/binding.h"
#include "python/mx_array.h"

namespace mx::python {
namespace {

// Plain tensors: safetensors dtype, numpy dtype name, and the ggml type GGUF stores it as
// (-1: none here).
struct PlainType {
  const char* safetensors;
  const char* numpy;
  int64_t ggml;
};
constexpr PlainType kPlainTypes[] = {
    {"F32", "float32", io::kGgmlF32},
    {"F16", "float16", io::kGgmlF16},
    {"BF16", "bfloat16", io::kGgmlBF16},
    {"F64", "float64", -1},
    {"U8", "uint8", -1},
    {"I8", "int8", -1},
    {"U16", "uint16", -1},
    {"I16", "int16", -1},
    {"U32", "uint32", -1},
    {"I32", "int32", -1},
    {"U64", "uint64", -1},
    {"I64", "int64", -1},
    {"BOOL", "bool", -1},
};

const PlainType* plain_type_by_numpy(const std::string& name) {
  for (const PlainType& t : kPlainTypes) {
    if (name == t.numpy) return &t;
  }
  return nullptr;
}

py::dtype numpy_dtype_named(const std::string& name) {
  return name == "bfloat16" ? bfloat16_dtype() : py::dtype(name);
}

// A copy of a file's tensor bytes as a numpy array (the file's mapping closes with the call).
py::array array_copy(const std::string& numpy_name, std::span<const int64_t> shape,
                     std::span<const uint8_t> bytes) {
  py::array a(numpy_dtype_named(numpy_name), std::vector<py::ssize_t>(shape.begin(), shape.end()));
  if (!bytes.empty()) std::memcpy(a.mutable_data(), bytes.data(), bytes.size());
  return a;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

enum class FileKind { kSafetensors, kGguf };

FileKind kind_of(const std::string& path) {
  if (ends_with(path, ".safetensors")) return FileKind::kSafetensors;
  if (ends_with(path, ".gguf")) return FileKind::kGguf;
  throw py::value_error(path + ": unknown file type (expected .safetensors or .gguf)");
}

py::dict load_safetensors(const std::string& path) {
  io::SafetensorsFile file;
  std::map<std::string, MxTensor> mx;
  std::string error;
  {
    py::gil_scoped_release release;
    error = io::open_safetensors(path, &file);
    if (error.empty()) error = io::load_mx_tensors(file, &mx);
    if (!error.empty() && !error.starts_with(path)) error = path + ": " + error;
  }
  check(error);
  std::map<std::string, std::string> owner;  // component -> MX tensor
  for (const auto& [name, t] : mx) {
    for (const std::string& part : io::mx_component_names(name, t)) owner[part] = name;
  }
  py::dict out;
  for (const io::SafetensorsTensor& t : file.tensors()) {
    if (auto it = owner.find(t.name); it != owner.end()) {
      if (!out.contains(it->second)) {
        out[py::str(it->second)] = make_mx_array(std::move(mx.at(it->second)));
      }
      continue;
    }
    const PlainType* type = nullptr;
    for (const PlainType& p : kPlainTypes) {
      if (t.dtype == p.safetensors) type = &p;
    }
    if (type == nullptr) {
      throw py::value_error(path + ": tensor '" + t.name + "' has dtype " + t.dtype +
                            ", which has no numpy type");
    }
    out[py::str(t.name)] = array_copy(type->numpy, t.shape, t.bytes);
  }
  return out;
}

py::dict load_gguf(const std::string& path) {
  io::GgufFile file;
  std::string error;
  {
    py::gil_scoped_release release;
    error = io::open_gguf(path, &file);
  }
  check(error);
  py::dict out;
  for (const io::GgufTensor& t : file.tensors()) {
    const std::vector<int64_t> shape = t.shape();
    if (t.type == io::kGgmlMxfp4) {
      MxTensor m;
      check(io::load_gguf_mxfp4(t, &m));
      out[py::str(t.name)] = make_mx_array(std::move(m));
      continue;
    }
    const PlainType* type = nullptr;
    for (const PlainType& p : kPlainTypes) {
      if (p.ggml == int64_t{t.type}) type = &p;
    }
    if (type == nullptr) {
      throw py::value_error(path + ": tensor '" + t.name + "' has ggml type " +
                            std::to_string(t.type) + " (mxkit.load reads MXFP4, F32, F16, BF16)");
    }
    out[py::str(t.name)] = array_copy(type->numpy, shape, t.bytes);
  }
  return out;
}

py::dict load(const std::string& path) {
  return kind_of(path) == FileKind::kGguf ? load_gguf(path) : load_safetensors(path);
}

// What save() writes for one entry of its dict.
struct Entry {
  std::string name;
  py::object owner;             // keeps the value alive while the GIL is released
  const MxArray* mx = nullptr;  // or:
  py::array array;              // C-contiguous
  const PlainType* type = nullptr;
};

std::vector<Entry> entries_of(const py::dict& tensors) {
  std::vector<Entry> entries;
  for (const auto& [key, value] : tensors) {
    if (!py::isinstance<py::str>(key)) throw py::type_error("tensor names must be str");
    Entry e;
    e.name = key.cast<std::string>();
    e.owner = py::reinterpret_borrow<py::object>(value);
    if (py::isinstance<MxArray>(value)) {
      e.mx = &value.cast<const MxArray&>();
    } else {
      e.array = contiguous_array(value, ("tensor '" + e.name + "'").c_str());
      const std::string dtype = e.array.dtype().attr("name").cast<std::string>();
      e.type = plain_type_by_numpy(dtype);
      if (e.type == nullptr) {
        throw py::type_error("tensor '" + e.name + "' has dtype " + dtype +
                             ", which safetensors and GGUF do not store");
      }
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::string save_safetensors(const std::string& path, const std::vector<Entry>& entries) {
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> metadata;
  for (const Entry& e : entries) {
    if (e.mx != nullptr) {
      if (auto err = io::add_mx_tensor(e.name, e.mx->tensor, &tensors, &metadata); !err.empty()) {
        return "tensor '" + e.name + "': " + err;
      }
    } else {
      tensors.push_back({e.name, e.type->safetensors, shape_of(e.array), bytes_of(e.array)});
    }
  }
  py::gil_scoped_release release;
  return io::write_safetensors(path, tensors, metadata);
}

std::string save_gguf(const std::string& path, const std::vector<Entry>& entries) {
  std::vector<io::GgufTensorToWrite> tensors(entries.size());
  std::deque<std::vector<uint8_t>> storage;  // ggml blocks, at stable addresses
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.mx != nullptr) {
      if (auto err =
              io::gguf_mxfp4_tensor(e.name, e.mx->tensor, &storage.emplace_back(), &tensors[i]);
          !err.empty()) {
        return err;
      }
      continue;
    }
    if (e.type->ggml < 0) {
      return "tensor '" + e.name + "' has dtype " + e.type->numpy +
             " (GGUF files here hold float32, float16, bfloat16 and MXFP4)";
    }
    const std::vector<int64_t> shape = shape_of(e.array);
    tensors[i] = {
        e.name, {shape.rbegin(), shape.rend()}, uint32_t(e.type->ggml), bytes_of(e.array)};
  }
  py::gil_scoped_release release;
  return io::write_gguf(path, {}, tensors);
}

void save(const std::string& path, const py::dict& tensors) {
  const FileKind kind = kind_of(path);
  check(io::check_output_file(path));
  const std::vector<Entry> entries = entries_of(tensors);
  check(kind == FileKind::kGguf ? save_gguf(path, entries) : save_safetensors(path, entries));
}

}  // namespace

void add_files(py::module_& m) {
  m.def("load", &load, py::arg("path"),
        "The tensors of a .safetensors or .gguf file by name: MX tensors as MxArrays, others as "
        "numpy arrays.");
  m.def("save", &save, py::arg("path"), py::arg("tensors"),
        "Writes a dict of MxArrays and numpy arrays to a .safetensors file (any MX spec) or a "
        ".gguf file (MXFP4 in row-wise blocks of 32; float32, float16, bfloat16), atomically.");
}

}  // namespace mx::python

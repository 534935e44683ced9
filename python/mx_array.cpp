#include "python/mx_array.h"

#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <utility>

#include "mx/core/half.h"
#include "mx/io/mx_safetensors.h"
#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::python {

py::dict spec_dict(const QuantSpec& spec) {
  py::dict d;
  d["format"] = std::string(traits(spec.format).mx_name);
  if (spec.is_tiled()) {
    d["tile"] = py::make_tuple(spec.tile_rows, spec.tile_cols);
  } else {
    d["block"] = spec.block_size;
    d["axis"] = spec.axis;
  }
  d["scale"] = std::string(scale_rule_name(spec.scale_rule));
  d["round"] = std::string(rounding_name(spec.rounding));
  d["seed"] = spec.seed;
  d["asym"] = spec.asymmetric;
  d["flush_subnormals"] = spec.flush_subnormals;
  d["zero_block_scale"] = spec.zero_block_scale;
  return d;
}

namespace {

// float16 is not a decoder output of the library: decode to float32, which holds every MX value
// exactly, and round each value once to float16.
py::array dequantize_to_fp16(const MxTensor& t) {
  py::array out(py::dtype("float16"), std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
  auto* bits = static_cast<uint16_t*>(out.mutable_data());
  std::string error;
  {
    py::gil_scoped_release release;
    std::vector<float> values(static_cast<size_t>(element_count(t.shape)));
    error = cpu::dequantize(t, DType::kF32, values.data());
    for (size_t i = 0; error.empty() && i < values.size(); ++i) bits[i] = float_to_fp16(values[i]);
  }
  check(error);
  return out;
}

// x [..., K] times the MxArray's W [N, K] transposed, from W's packed blocks (cpu::mx_matmul):
// float32 [..., N].
py::array matmul(const MxArray& a, const py::handle& x, const std::string& mode, int threads,
                 const py::handle& dtype) {
  const Input in = input_array(x, dtype);
  if (in.dtype == DType::kF16) {
    throw py::type_error("x must be float32 or bfloat16 (convert float16 first)");
  }
  const std::vector<int64_t>& w = a.tensor.shape;
  if (w.size() != 2) throw py::value_error("matmul needs a 2-D [N, K] MxArray");
  if (in.shape.empty() || in.shape.back() != w[1]) {
    throw py::value_error("x's last axis must hold K = " + std::to_string(w[1]) + " values");
  }
  cpu::MatmulOptions options;
  if (mode == "exact") {
    options.mode = cpu::MatmulMode::kExact;
  } else if (mode == "fast") {
    options.mode = cpu::MatmulMode::kFast;
  } else {
    throw py::value_error("unknown mode '" + mode + "' (expected exact or fast)");
  }
  options.threads = threads;
  int64_t m = 1;
  for (size_t i = 0; i + 1 < in.shape.size(); ++i) m *= in.shape[i];
  std::vector<float> y(static_cast<size_t>(m * w[0]));
  std::string error;
  {
    py::gil_scoped_release release;
    error = cpu::mx_matmul(a.tensor, in.array.data(), in.dtype, m, y.data(), options);
  }
  check(error);
  std::vector<int64_t> shape(in.shape.begin(), in.shape.end() - 1);
  shape.push_back(w[0]);
  return array_owning(std::move(y), shape, py::dtype::of<float>());
}

// The bytes of a numpy array (of any dtype: offsets come as bfloat16 or uint16), copied.
std::vector<uint8_t> byte_vector(const py::handle& x, const char* what) {
  const py::array a = contiguous_array(x, what);
  const std::span<const uint8_t> bytes = bytes_of(a);
  return {bytes.begin(), bytes.end()};
}

std::string repr(const MxArray& a) {
  std::string shape;
  for (int64_t d : a.tensor.shape) {
    if (!shape.empty()) shape += ", ";
    shape += std::to_string(d);
  }
  if (a.tensor.shape.size() == 1) shape += ",";
  return "MxArray(shape=(" + shape + "), " + describe(a.tensor.spec) + ")";
}

}  // namespace

py::array dequantize(const MxArray& a, DType dtype) {
  const MxTensor& t = a.tensor;
  if (dtype == DType::kF16) return dequantize_to_fp16(t);
  py::array out(numpy_dtype(dtype), std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
  void* data = out.mutable_data();
  std::string error;
  {
    py::gil_scoped_release release;
    error = cpu::dequantize(t, dtype, data);
  }
  check(error);
  return out;
}

MxArray make_mx_array(MxTensor&& t) {
  check(check_consistent(t));
  std::string error;
  BlockGrid grid = make_block_grid(t.shape, t.spec, &error);
  check(error);
  return MxArray{std::move(t), std::move(grid)};
}

void add_mx_array(py::module_& m) {
  py::class_<MxArray>(m, "MxArray",
                      "A quantized array: packed element codes, one E8M0 scale per block and, "
                      "for asymmetric specs, one bfloat16 offset per block.")
      .def_property_readonly(
          "shape", [](const MxArray& a) { return py::tuple(py::cast(a.tensor.shape)); },
          "Shape of the original array.")
      .def_property_readonly(
          "spec", [](const MxArray& a) { return spec_dict(a.tensor.spec); },
          "The quantization choices, as keyword arguments of quantize() name them.")
      .def_property_readonly(
          "format",
          [](const MxArray& a) { return std::string(traits(a.tensor.spec.format).mx_name); },
          "Element format name, e.g. 'mxfp8_e4m3'.")
      .def_property_readonly(
          "packed",
          [](const py::object& self) {
            const MxArray& a = self.cast<const MxArray&>();
            const int64_t n = static_cast<int64_t>(a.tensor.elements.size());
            return read_only_view(py::dtype::of<uint8_t>(), std::span(&n, 1),
                                  a.tensor.elements.data(), self);
          },
          "The packed element bytes, block after block (a read-only view, no copy).")
      .def(
          "scales",
          [](const py::object& self) {
            const MxArray& a = self.cast<const MxArray&>();
            return read_only_view(py::dtype::of<uint8_t>(), a.grid.scale_shape,
                                  a.tensor.scales.data(), self);
          },
          "The E8M0 scale bytes in the block grid's shape (a read-only view, no copy).")
      .def(
          "offsets",
          [](const py::object& self) -> py::object {
            const MxArray& a = self.cast<const MxArray&>();
            if (!a.tensor.spec.asymmetric) return py::none();
            return read_only_view(bfloat16_dtype(), a.grid.scale_shape, a.tensor.offsets.data(),
                                  self);
          },
          "The bfloat16 offsets of an asymmetric array in the block grid's shape, else None.")
      .def(
          "codes",
          [](const MxArray& a) {
            return array_owning(element_codes(a.tensor, a.grid), a.tensor.shape,
                                py::dtype::of<uint8_t>());
          },
          "One uint8 element code per element, in the array's shape.")
      .def(
          "dequantize",
          [](const MxArray& a, const py::handle& dtype) {
            return dequantize(a, dtype_argument(dtype, "dtype"));
          },
          py::arg("dtype") = "float32", "Decoded values as float32, float16 or bfloat16.")
      .def_property_readonly(
          "nbytes",
          [](const MxArray& a) {
            return a.tensor.elements.size() + a.tensor.scales.size() + 2 * a.tensor.offsets.size();
          },
          "Bytes of storage: codes, scales and offsets.")
      .def("matmul", &matmul, py::arg("x"), py::kw_only(), py::arg("mode") = "exact",
           py::arg("threads") = 0, py::arg("dtype") = py::none(),
           "x [..., K] @ W.T for this array's W [N, K] (blocks of 32 along K, symmetric), from "
           "the packed blocks, never dequantized to memory: float32 [..., N]. mode='exact' is "
           "the float32 product; 'fast' first quantizes x to MXINT8 (docs/NUMERICS.md).")
      .def_static(
          "from_packed",
          [](const py::handle& packed, const py::handle& scales, std::vector<int64_t> shape,
             const py::handle& offsets, const py::kwargs& spec) {
            MxTensor t;
            t.shape = std::move(shape);
            t.spec = spec_from_dict(spec);
            t.elements = byte_vector(packed, "packed");
            t.scales = byte_vector(scales, "scales");
            if (!offsets.is_none()) {
              const std::vector<uint8_t> bytes = byte_vector(offsets, "offsets");
              if (bytes.size() % 2 != 0) {
                throw py::value_error("offsets must be bfloat16 values (2 bytes each)");
              }
              t.offsets.resize(bytes.size() / 2);
              std::memcpy(t.offsets.data(), bytes.data(), 2 * t.offsets.size());
            }
            return make_mx_array(std::move(t));
          },
          py::arg("packed"), py::arg("scales"), py::arg("shape"), py::arg("offsets") = py::none(),
          "An MxArray over stored parts (copied): the packed element bytes, the scale bytes and, "
          "for asymmetric specs, the bfloat16 offsets, with quantize()'s spec keywords. "
          "ValueError when their sizes do not fit the shape and spec.")
      .def("__repr__", &repr);

  m.def(
      "_storage_layout",
      [](std::vector<int64_t> shape, const py::dict& spec_keywords) {
        const QuantSpec spec = spec_from_dict(spec_keywords);
        std::string error;
        const BlockGrid grid = make_block_grid(shape, spec, &error);
        check(error);
        const MxStorageSizes sizes = storage_sizes(grid, spec);
        return py::make_tuple(sizes.element_bytes, py::tuple(py::cast(grid.scale_shape)),
                              sizes.offset_count);
      },
      py::arg("shape"), py::arg("spec"),
      "(packed bytes, scale shape, offset count) of a shape quantized by a spec dict.");
}

}  // namespace mx::python

// quantize, fake_quantize and formats. Keyword values go to the library as the text the `mx`
// flags take (mx/core/spec_text.h), so that a bad value raises the command line's message.
#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "mx/core/format.h"
#include "mx/core/spec_text.h"
#include "mx/kernels/cpu/quantize.h"
#include "python/binding.h"
#include "python/mx_array.h"

namespace mx::python {
namespace {

std::string type_name(const py::handle& v) {
  return py::str(py::type::handle_of(v).attr("__name__"));
}

// A str keyword; None leaves `*text` at its default. Returns whether a value was given.
bool text_argument(const py::handle& v, const char* name, std::string* text) {
  if (v.is_none()) return false;
  if (!py::isinstance<py::str>(v)) {
    throw py::type_error(std::string(name) + " must be a str, not " + type_name(v));
  }
  *text = v.cast<std::string>();
  return true;
}

// An int keyword, as decimal text (any size: the library says what is out of range).
bool integer_argument(const py::handle& v, const char* name, std::string* text) {
  if (v.is_none()) return false;
  if (!py::isinstance<py::int_>(v) || py::isinstance<py::bool_>(v)) {
    throw py::type_error(std::string(name) + " must be an int, not " + type_name(v));
  }
  *text = py::str(v);
  return true;
}

// tile=(R, C) or "RxC".
bool tile_argument(const py::handle& v, std::string* text) {
  if (v.is_none()) return false;
  if (py::isinstance<py::str>(v)) return text_argument(v, "tile", text);
  if (py::isinstance<py::tuple>(v) || py::isinstance<py::list>(v)) {
    auto items = py::reinterpret_borrow<py::sequence>(v);
    std::string rows, cols;
    if (items.size() == 2 && integer_argument(items[0], "tile[0]", &rows) &&
        integer_argument(items[1], "tile[1]", &cols)) {
      *text = rows + "x" + cols;
      return true;
    }
  }
  throw py::type_error("tile must be (rows, cols) or 'RxC', not " + type_name(v));
}

struct SpecArguments {
  py::object format, block, axis, tile, scale, round, seed, preset;
  bool asym = false;
  bool flush_subnormals = false;
};

QuantSpec spec_from(const SpecArguments& a) {
  SpecText text;
  text_argument(a.format, "format", &text.format);
  text.block_given = integer_argument(a.block, "block", &text.block);
  text.axis_given = integer_argument(a.axis, "axis", &text.axis);
  text.tile_given = tile_argument(a.tile, &text.tile);
  text.scale_given = text_argument(a.scale, "scale", &text.scale);
  text.round_given = text_argument(a.round, "round", &text.round);
  integer_argument(a.seed, "seed", &text.seed);
  text_argument(a.preset, "preset", &text.preset);
  text.asym = a.asym;
  text.flush_subnormals = a.flush_subnormals;
  QuantSpec spec;
  check(parse_spec_text(text, &spec));
  return spec;
}

}  // namespace

Input input_array(const py::handle& x, const py::handle& dtype_arg) {
  Input in{contiguous_array(x, "x"), DType::kF32, {}};
  const py::dtype dt = in.array.dtype();
  if (dt.attr("byteorder").cast<std::string>() == ">") {
    throw py::type_error("x is big-endian (expected native little-endian values)");
  }
  const std::string name = dt.attr("name").cast<std::string>();
  const std::optional<DType> declared =
      dtype_arg.is_none() ? std::nullopt : std::optional(dtype_argument(dtype_arg, "dtype"));
  std::optional<DType> own = parse_dtype(name);
  if (!own && name == "uint16" && declared == DType::kBF16) own = DType::kBF16;
  if (!own) {
    throw py::type_error("dtype " + name +
                         " cannot be quantized (expected float32, float16 or bfloat16" +
                         (name == "uint16" ? "; for bfloat16 bits held as uint16 pass "
                                             "dtype='bfloat16')"
                                           : ")"));
  }
  if (declared && *declared != *own) {
    throw py::type_error("dtype='" + std::string(dtype_name(*declared)) +
                         "' does not describe an array of " + name);
  }
  in.dtype = *own;
  in.shape = shape_of(in.array);
  return in;
}

QuantSpec spec_from_dict(const py::dict& spec) {
  for (const auto& [key, value] : spec) {
    const std::string name = py::str(key);
    if (std::find(std::begin(kSpecKeywords), std::end(kSpecKeywords), name) ==
        std::end(kSpecKeywords)) {
      throw py::type_error("unknown spec keyword: " + name);
    }
  }
  auto get = [&](const char* key) -> py::object {
    if (!spec.contains(key)) return py::none();
    return spec[key];
  };
  auto flag = [&](const char* key) {
    const py::object v = get(key);
    if (v.is_none()) return false;
    if (!py::isinstance<py::bool_>(v)) {
      throw py::type_error(std::string(key) + " must be a bool, not " + type_name(v));
    }
    return v.cast<bool>();
  };
  return spec_from(SpecArguments{get("format"), get("block"), get("axis"), get("tile"),
                                 get("scale"), get("round"), get("seed"), get("preset"),
                                 flag("asym"), flag("flush_subnormals")});
}

namespace {

MxArray quantize_input(const Input& in, const QuantSpec& spec) {
  MxTensor t;
  std::string error;
  {
    py::gil_scoped_release release;
    error = cpu::quantize(in.array.data(), in.dtype, in.shape, spec, &t);
  }
  check(error);
  return make_mx_array(std::move(t));
}

MxArray quantize(const py::handle& x, const SpecArguments& args, const py::handle& dtype_arg) {
  const QuantSpec spec = spec_from(args);
  return quantize_input(input_array(x, dtype_arg), spec);
}

// The result has x's own dtype. float16 is no output of the library's fused path: quantize,
// decode exactly to float32 and round once, as MxArray.dequantize("float16") does.
py::array fake_quantize(const py::handle& x, const SpecArguments& args,
                        const py::handle& dtype_arg) {
  const QuantSpec spec = spec_from(args);
  const Input in = input_array(x, dtype_arg);
  if (in.dtype == DType::kF16) return dequantize(quantize_input(in, spec), DType::kF16);
  py::array out(in.array.dtype(), std::vector<py::ssize_t>(in.shape.begin(), in.shape.end()));
  void* data = out.mutable_data();
  std::string error;
  {
    py::gil_scoped_release release;
    error = cpu::fake_quantize(in.array.data(), in.dtype, in.shape, spec, in.dtype, data);
  }
  check(error);
  return out;
}

py::dict formats() {
  py::dict all;
  for (const FormatTraits& t : all_formats()) {
    py::dict d;
    d["element"] = std::string(t.name);
    d["bits"] = t.bits;
    d["is_integer"] = t.is_integer;
    d["exp_bits"] = t.exp_bits;
    d["man_bits"] = t.man_bits;
    d["bias"] = t.bias;
    d["emax"] = t.emax;
    d["emin"] = t.emin;
    d["max_normal"] = t.max_normal;
    d["min_normal"] = t.min_normal;
    d["min_subnormal"] = t.min_subnormal;
    d["has_inf"] = t.has_inf;
    d["has_nan"] = t.has_nan;
    all[py::str(std::string(t.mx_name))] = d;
  }
  return all;
}

// Both quantizing functions take the same keywords; defaults of None mean "not given", so that
// a tile can refuse an explicit block and an explicit scale can override a preset. The shown
// defaults are the values None stands for.
template <class F>
void def_quantizing(py::module_& m, const char* name, F f, const char* doc) {
  m.def(
      name,
      [f](const py::handle& x, const py::object& format, const py::object& block,
          const py::object& axis, const py::object& tile, const py::object& scale,
          const py::object& round, const py::object& seed, bool asym, const py::object& preset,
          bool flush_subnormals, const py::object& dtype) {
        return f(x,
                 SpecArguments{format, block, axis, tile, scale, round, seed, preset, asym,
                               flush_subnormals},
                 dtype);
      },
      doc, py::arg("x"), py::arg("format") = "mxfp8_e4m3", py::kw_only(),
      py::arg_v("block", py::none(), "32"), py::arg_v("axis", py::none(), "-1"),
      py::arg("tile") = py::none(), py::arg_v("scale", py::none(), "'floor'"),
      py::arg_v("round", py::none(), "'nearest-even'"), py::arg("seed") = 0,
      py::arg("asym") = false, py::arg("preset") = py::none(), py::arg("flush_subnormals") = false,
      py::arg("dtype") = py::none());
}

}  // namespace

void add_formats(py::module_& m) {
  m.def("formats", &formats, "The element formats by MX name, with their traits.");
}

void add_quantize(py::module_& m) {
  py::tuple keywords(std::size(kSpecKeywords));
  for (size_t i = 0; i < std::size(kSpecKeywords); ++i) keywords[i] = py::str(kSpecKeywords[i]);
  m.attr("_spec_keywords") = keywords;
  def_quantizing(m, "quantize", &quantize,
                 "Quantizes a float32, float16 or bfloat16 array to an MxArray. bfloat16 is "
                 "ml_dtypes' bfloat16, or uint16 bit patterns with dtype='bfloat16'.");
  def_quantizing(m, "fake_quantize", &fake_quantize,
                 "quantize(x, ...).dequantize(x's dtype), in one pass where the library has one.");
}

}  // namespace mx::python

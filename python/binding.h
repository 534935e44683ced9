// What every part of the Python module shares: the library's one-line errors raised as Python
// exceptions, numpy arrays that own or view library buffers without copying, and the dtypes.
// The module only converts arguments and results; the work is the library's.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"

namespace mx::python {

namespace py = pybind11;

// Raises ValueError with the library's message when `error` is not empty.
inline void check(const std::string& error) {
  if (!error.empty()) throw py::value_error(error);
}

// The numpy dtype of bfloat16 values: ml_dtypes' bfloat16 when that package is installed, else
// uint16 holding the bit patterns.
py::dtype bfloat16_dtype();

// The numpy dtype that holds values of `t`.
py::dtype numpy_dtype(DType t);

// The DType a dtype argument names: a string ("float32", "float16", "bfloat16") or anything
// numpy.dtype accepts. TypeError for anything else.
DType dtype_argument(const py::handle& arg, const char* what);

// A read-only numpy array over `bytes`, which `owner` keeps alive: no copy.
py::array read_only_view(const py::dtype& dtype, std::span<const int64_t> shape, const void* data,
                         const py::handle& owner);

// A numpy array that takes over `values` without copying them.
template <class T>
py::array array_owning(std::vector<T>&& values, std::span<const int64_t> shape,
                       const py::dtype& dtype) {
  auto holder = std::make_unique<std::vector<T>>(std::move(values));
  const void* data = holder->data();
  py::capsule owner(holder.get(), [](void* p) { delete static_cast<std::vector<T>*>(p); });
  holder.release();
  return py::array(dtype, std::vector<py::ssize_t>(shape.begin(), shape.end()), data, owner);
}

// A C-contiguous numpy array of `x` (x itself when it already is one), or TypeError naming
// `what` when x is not a numpy array.
py::array contiguous_array(const py::handle& x, const char* what);

std::vector<int64_t> shape_of(const py::array& a);

// The bytes of a C-contiguous array.
inline std::span<const uint8_t> bytes_of(const py::array& a) {
  return {static_cast<const uint8_t*>(a.data()), static_cast<size_t>(a.nbytes())};
}

// The values of an array argument as the library reads them.
struct Input {
  py::array array;  // C-contiguous, kept alive while the library reads it
  DType dtype;
  std::vector<int64_t> shape;
};

// x as a C-contiguous float32, float16 or bfloat16 array (uint16 bit patterns with
// dtype="bfloat16"); TypeError for anything else.
Input input_array(const py::handle& x, const py::handle& dtype_arg);

// The keywords of quantize() that describe a spec (all but x and dtype).
inline constexpr const char* kSpecKeywords[] = {"format", "block",           "axis", "tile",
                                                "scale",  "round",           "seed", "asym",
                                                "preset", "flush_subnormals"};

// The spec a dict of kSpecKeywords names; TypeError for another key, ValueError for a bad value.
QuantSpec spec_from_dict(const py::dict& spec);

// The parts of the module, each in its own file.
void add_formats(py::module_& m);
void add_mx_array(py::module_& m);
void add_quantize(py::module_& m);
void add_layouts(py::module_& m);
void add_files(py::module_& m);
void add_recipe(py::module_& m);
void add_gptq(py::module_& m);
// Present only in a module built with CUDA (MX_HAVE_CUDA).
void add_cuda(py::module_& m);

}  // namespace mx::python

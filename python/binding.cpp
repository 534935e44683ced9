#include "python/binding.h"

#include <string>

namespace mx::python {

py::dtype bfloat16_dtype() {
  // Looked up once: a failed import is not cached by Python and would search sys.path on every
  // call. The reference is kept for the life of the process, deliberately never released, so
  // that no Python object is destroyed after the interpreter.
  static PyObject* dtype = nullptr;
  if (dtype == nullptr) {
    try {
      dtype =
          py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16")).release().ptr();
    } catch (const py::error_already_set&) {
      dtype = py::dtype::of<uint16_t>().release().ptr();
    }
  }
  return py::reinterpret_borrow<py::dtype>(dtype);
}

py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::kF32:
      return py::dtype::of<float>();
    case DType::kF16:
      return py::dtype("float16");
    case DType::kBF16:
      return bfloat16_dtype();
  }
  return py::dtype::of<float>();
}

DType dtype_argument(const py::handle& arg, const char* what) {
  std::string name;
  if (py::isinstance<py::str>(arg)) {
    name = arg.cast<std::string>();
  } else {
    try {
      name = py::dtype::from_args(py::reinterpret_borrow<py::object>(arg))
                 .attr("name")
                 .cast<std::string>();
    } catch (const py::error_already_set&) {
      throw py::type_error(std::string(what) + " must name a dtype, not " +
                           std::string(py::str(py::type::handle_of(arg).attr("__name__"))));
    }
  }
  if (const std::optional<DType> t = parse_dtype(name)) return *t;
  throw py::type_error(std::string(what) + " '" + name + "' is not float32, float16 or bfloat16");
}

py::array read_only_view(const py::dtype& dtype, std::span<const int64_t> shape, const void* data,
                         const py::handle& owner) {
  py::array a(dtype, std::vector<py::ssize_t>(shape.begin(), shape.end()), data, owner);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

py::array contiguous_array(const py::handle& x, const char* what) {
  if (!py::isinstance<py::array>(x)) {
    throw py::type_error(std::string(what) + " must be a numpy array, not " +
                         std::string(py::str(py::type::handle_of(x).attr("__name__"))));
  }
  auto a = py::reinterpret_borrow<py::array>(x);
  if (a.flags() & py::array::c_style) return a;
  return py::module_::import("numpy").attr("ascontiguousarray")(a).cast<py::array>();
}

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

}  // namespace mx::python

PYBIND11_MODULE(_mxkit, m) {
  m.doc() = "mxkit: OCP Microscaling (MX) formats for numpy arrays";
  m.attr("__version__") = MX_VERSION;
  mx::python::add_formats(m);
  mx::python::add_mx_array(m);
  mx::python::add_quantize(m);
  mx::python::add_layouts(m);
  mx::python::add_files(m);
  mx::python::add_recipe(m);
  mx::python::add_gptq(m);
#ifdef MX_HAVE_CUDA
  mx::python::add_cuda(m);
#endif
}

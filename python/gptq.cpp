// mxkit.hessian and mxkit.gptq: one linear weight quantized by error diffusion (mx/ptq/gptq.h),
// for weights and calibration inputs that the caller holds, e.g. a PyTorch model's layer and
// the activations a forward hook saw. The result is an MxArray like quantize()'s.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "mx/ptq/gptq.h"
#include "mx/ptq/hessian.h"
#include "python/binding.h"
#include "python/mx_array.h"

namespace mx::python {
namespace {

using FloatMatrix = py::array_t<float, py::array::c_style | py::array::forcecast>;

// `a` as a C-contiguous float32 matrix; ValueError naming `name` unless it is 2-D.
FloatMatrix matrix_argument(const py::handle& a, const char* name) {
  FloatMatrix m = FloatMatrix::ensure(a);
  if (!m) throw py::type_error(std::string(name) + " must be an array of floats");
  if (m.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be 2-D, not " + std::to_string(m.ndim()) +
                          "-D");
  }
  return m;
}

py::array_t<float> hessian(const py::handle& x_arg, int threads) {
  const FloatMatrix x = matrix_argument(x_arg, "x");
  const int64_t rows = x.shape(0), k = x.shape(1);
  py::array_t<float> h({k, k});
  std::fill_n(h.mutable_data(), k * k, 0.0f);
  {
    py::gil_scoped_release release;
    ptq::accumulate_hessian(h.mutable_data(), x.data(), rows, k, threads);
  }
  return h;
}

ptq::ScaleChoice scale_choice_argument(const std::string& name) {
  if (name == "rule") return ptq::ScaleChoice::kRule;
  if (name == "search") return ptq::ScaleChoice::kNeighbors;
  if (name == "lookahead") return ptq::ScaleChoice::kLookahead;
  throw py::value_error("scale_choice must be rule, search or lookahead, not '" + name + "'");
}

MxArray gptq(const py::handle& w_arg, const py::handle& h_arg, const std::string& format,
             const std::string& order, double damp, const std::string& scale_choice, int refine,
             int threads, const py::kwargs& spec_keywords) {
  py::dict spec_dict;
  for (const auto& [key, value] : spec_keywords) spec_dict[key] = value;
  spec_dict["format"] = format;
  const QuantSpec spec = spec_from_dict(spec_dict);
  const FloatMatrix w = matrix_argument(w_arg, "w");
  const FloatMatrix h = matrix_argument(h_arg, "hessian");
  const int64_t n = w.shape(0), k = w.shape(1);
  if (h.shape(0) != k || h.shape(1) != k) {
    throw py::value_error("hessian must be " + std::to_string(k) + " x " + std::to_string(k) +
                          " for a weight of " + std::to_string(k) + " inputs, not " +
                          std::to_string(h.shape(0)) + " x " + std::to_string(h.shape(1)));
  }
  ptq::GptqOptions options;
  const std::optional<ptq::ColumnOrder> o = ptq::parse_column_order(order);
  if (!o) {
    throw py::value_error("order must be natural, act-blocks or act-columns, not '" + order + "'");
  }
  options.order = *o;
  options.damp = damp;
  options.scale = scale_choice_argument(scale_choice);
  options.refine_passes = refine;
  options.threads = threads;
  MxTensor t;
  std::string error;
  {
    py::gil_scoped_release release;
    error = ptq::gptq_quantize(std::span(w.data(), size_t(n * k)), n, k,
                               std::span(h.data(), size_t(k * k)), spec, options, &t);
  }
  check(error);
  return make_mx_array(std::move(t));
}

}  // namespace

void add_gptq(py::module_& m) {
  m.def("hessian", &hessian, py::arg("x"), py::arg("threads") = 0,
        "x^T x for calibration inputs x [tokens, k] (float32, each element one chain of fused "
        "multiply-adds in token order): the Hessian that gptq() takes. Sum it over batches.");
  m.def("gptq", &gptq, py::arg("w"), py::arg("hessian"), py::arg("format") = "mxfp4_e2m1",
        py::kw_only(), py::arg("order") = "natural", py::arg("damp") = 0.01,
        py::arg("scale_choice") = "rule", py::arg("refine") = 0, py::arg("threads") = 0,
        "The weight w [out, in] quantized by error diffusion (GPTQ) against the Hessian of its "
        "inputs, hessian [in, in] = X^T X: an MxArray, blocks along the inputs unless the spec "
        "keywords of quantize() (block, axis, tile, scale, round, seed, asym, preset, "
        "flush_subnormals) say otherwise. order: natural, act-blocks or act-columns; damp: the "
        "fraction of mean(diag H) added to H; scale_choice: rule, search or lookahead; refine: "
        "sweeps of coordinate descent after GPTQ (docs/NUMERICS.md, section 17).");
}

}  // namespace mx::python

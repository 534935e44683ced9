// mxkit.recipe: a training recipe as plain Python data, for mxkit.torch. The recipe is the one
// `mx train --recipe` reads (a preset name, JSON text, or the path of a JSON file); each GEMM
// operand role becomes None (left as it is), "bf16", or the keywords of mxkit.fake_quantize that
// give its MX cast, every keyword but the axis, which the role fixes (mx/nn/recipe.h).
#include <string>

#include "mx/nn/recipe.h"
#include "python/binding.h"
#include "python/mx_array.h"

namespace mx::python {
namespace {

py::object role(const nn::OperandCast& c) {
  switch (c.kind) {
    case nn::OperandCast::Kind::kNone:
      return py::none();
    case nn::OperandCast::Kind::kBF16:
      return py::str("bf16");
    case nn::OperandCast::Kind::kMx:
      break;
  }
  // MxArray.spec's keywords, less those fake_quantize takes from elsewhere or not at all.
  py::dict d = spec_dict(c.spec);
  d.attr("pop")("axis", py::none());
  d.attr("pop")("zero_block_scale", py::none());
  return d;
}

py::dict recipe(const std::string& spec) {
  nn::Recipe r;
  check(nn::recipe_from_spec(spec, &r));
  // Refused rather than dropped: mxkit.torch's casts would silently leave the blocks unrotated.
  if (nn::has_block_rotation(r)) {
    check("recipe " + r.name +
          " rotates its blocks before casting them, which mxkit.torch does "
          "not do (mx train and mx eval on the CPU do)");
  }
  py::dict d;
  d["name"] = r.name;
  d["weight_fwd"] = role(r.weight_fwd);
  d["act_fwd"] = role(r.act_fwd);
  d["grad_out_dx"] = role(r.grad_out_dx);
  d["weight_dx"] = role(r.weight_dx);
  d["grad_out_dw"] = role(r.grad_out_dw);
  d["act_dw"] = role(r.act_dw);
  d["bf16_vector_ops"] = r.bf16_vector_ops;
  d["bf16_classifier"] = r.bf16_classifier;
  d["bf16_attention"] = r.bf16_attention;
  return d;
}

}  // namespace

void add_recipe(py::module_& m) {
  m.def("recipe", &recipe, py::arg("spec"),
        "A training recipe (a preset name such as 'mxfp6', JSON text, or a JSON file's path) as "
        "a dict: each GEMM operand role (weight_fwd, act_fwd, grad_out_dx, weight_dx, "
        "grad_out_dw, act_dw) is None, 'bf16', or the keywords of fake_quantize for its MX cast "
        "(the role fixes the axis).");
  py::list names;
  for (std::string_view n : nn::recipe_preset_names()) names.append(std::string(n));
  m.attr("recipe_presets") = names;
}

}  // namespace mx::python

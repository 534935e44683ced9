#include "mx/nn/recipe.h"

#include <bit>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mx/io/cat.h"
#include "mx/io/json_text.h"

namespace mx::nn {
namespace {

QuantSpec mx_spec(ElementFormat format, Rounding rounding = Rounding::kNearestEven) {
  QuantSpec s;
  s.format = format;
  s.rounding = rounding;
  return s;
}

Recipe uniform(std::string name, const OperandCast& cast) {
  Recipe r;
  r.name = std::move(name);
  r.weight_fwd = r.act_fwd = r.grad_out_dx = r.weight_dx = r.grad_out_dw = r.act_dw = cast;
  return r;
}

// The roles of a recipe in a fixed order, with their JSON names.
struct RoleRef {
  std::string_view name;
  OperandCast Recipe::*member;
};
constexpr RoleRef kRoles[] = {
    {"weight_fwd", &Recipe::weight_fwd},   {"act_fwd", &Recipe::act_fwd},
    {"grad_out_dx", &Recipe::grad_out_dx}, {"weight_dx", &Recipe::weight_dx},
    {"grad_out_dw", &Recipe::grad_out_dw}, {"act_dw", &Recipe::act_dw},
};

std::string describe_cast(const OperandCast& c) {
  switch (c.kind) {
    case OperandCast::Kind::kNone:
      return "fp32";
    case OperandCast::Kind::kBF16:
      return "bf16";
    case OperandCast::Kind::kMx:
      return mx::describe(c.spec) + (c.is_rotated() ? " rotate=hadamard" : "");
  }
  return "?";
}

std::string parse_cast(const nlohmann::json& j, std::string_view role, OperandCast* out) {
  const std::string where = "recipe role '" + std::string(role) + "': ";
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "none" || s == "fp32") {
      *out = OperandCast::none();
    } else if (s == "bf16") {
      *out = OperandCast::bf16();
    } else if (auto f = parse_format(s)) {
      *out = OperandCast::mx(mx_spec(*f));
    } else {
      return where + "unknown cast '" + s + "'";
    }
    return "";
  }
  if (!j.is_object()) return where + "expected a string or an object";
  QuantSpec spec;
  BlockRotation rotation = BlockRotation::kNone;
  for (const auto& item : j.items()) {
    // Named references, not a structured binding: clang before 16 cannot capture a binding.
    const std::string& key = item.key();
    const nlohmann::json& value = item.value();
    const auto needs = [&](const char* what) { return where + "'" + key + "' must be " + what; };
    if (key == "format") {
      if (!value.is_string()) return needs("a format name");
      auto f = parse_format(value.get<std::string>());
      if (!f) return where + "unknown format '" + value.get<std::string>() + "'";
      spec.format = *f;
    } else if (key == "block") {
      if (!value.is_number_integer()) return needs("an integer from 1 to 1048576");
      // Read wide and range-checked: get<int>() would wrap 4294967328 to 32.
      const bool fits = value.is_number_unsigned() ? value.get<uint64_t>() <= (1u << 20)
                                                   : value.get<int64_t>() <= (1 << 20);
      const int64_t block = fits ? value.get<int64_t>() : 0;
      if (!fits || block <= 0) {
        return where + "block " + value.dump() + " is not between 1 and 1048576";
      }
      spec.block_size = int(block);
    } else if (key == "scale") {
      if (!value.is_string()) return needs("a scale rule's name");
      auto r = parse_scale_rule(value.get<std::string>());
      if (!r) return where + "unknown scale rule '" + value.get<std::string>() + "'";
      spec.scale_rule = *r;
    } else if (key == "round") {
      if (!value.is_string()) return needs("a rounding's name");
      auto r = parse_rounding(value.get<std::string>());
      if (!r) return where + "unknown rounding '" + value.get<std::string>() + "'";
      spec.rounding = *r;
    } else if (key == "seed") {
      if (!value.is_number_unsigned()) return needs("an integer from 0 to 2^64 - 1");
      spec.seed = value.get<uint64_t>();
    } else if (key == "asym") {
      if (!value.is_boolean()) return needs("true or false");
      spec.asymmetric = value.get<bool>();
    } else if (key == "rotate") {
      if (!value.is_string()) return needs("\"hadamard\" or \"none\"");
      const std::string name = value.get<std::string>();
      if (name != "hadamard" && name != "none") {
        return where + "unknown rotation '" + name + "' (hadamard or none)";
      }
      rotation = name == "hadamard" ? BlockRotation::kHadamard : BlockRotation::kNone;
    } else {
      return where + "unexpected field '" + key + "'";
    }
  }
  if (std::string e = validate(spec); !e.empty()) return where + e;
  if (rotation != BlockRotation::kNone &&
      (spec.block_size < 2 || !std::has_single_bit(unsigned(spec.block_size)))) {
    return where + "a Hadamard rotation needs blocks of a power of two, not " +
           std::to_string(spec.block_size);
  }
  *out = OperandCast::mx(spec);
  out->rotation = rotation;
  return "";
}

}  // namespace

std::vector<std::string_view> recipe_preset_names() {
  return {"fp32", "tf32", "bf16", "mxint8", "mxfp8", "mxfp6", "mxfp4w-mxfp6a", "mxfp4"};
}

std::optional<Recipe> recipe_preset(std::string_view name) {
  if (name == "fp32") return uniform("fp32", OperandCast::none());
  // No cast of its own: the GPU backend runs its float32 products on TF32 tensor cores.
  if (name == "tf32") return uniform("tf32", OperandCast::none());
  if (name == "bf16") return uniform("bf16", OperandCast::bf16());
  if (name == "mxint8") return uniform("mxint8", OperandCast::mx(mx_spec(ElementFormat::kInt8)));
  if (name == "mxfp8") return uniform("mxfp8", OperandCast::mx(mx_spec(ElementFormat::kE4M3)));
  if (name == "mxfp6") return uniform("mxfp6", OperandCast::mx(mx_spec(ElementFormat::kE3M2)));
  if (name == "mxfp4w-mxfp6a") {
    // The paper's mixed result: 4-bit weights, 6-bit activations and gradients.
    Recipe r = uniform("mxfp4w-mxfp6a", OperandCast::mx(mx_spec(ElementFormat::kE3M2)));
    r.weight_fwd = r.weight_dx = OperandCast::mx(mx_spec(ElementFormat::kE2M1));
    return r;
  }
  if (name == "mxfp4") {
    // Yang et al.: 4-bit weights and activations; gradients with stochastic rounding in the
    // wider-range E3M0, under EVEN scales. With FLOOR scales a block's largest gradients clip
    // to E3M0's top value, and training stalls (docs/RESULTS.md, the 20M study's ablation).
    Recipe r = uniform("mxfp4", OperandCast::mx(mx_spec(ElementFormat::kE2M1)));
    QuantSpec grad = mx_spec(ElementFormat::kE3M0, Rounding::kStochastic);
    grad.scale_rule = ScaleRule::kEven;
    r.grad_out_dx = r.grad_out_dw = OperandCast::mx(grad);
    return r;
  }
  return std::nullopt;
}

Recipe forward_only(const Recipe& recipe) {
  Recipe r = recipe;
  r.grad_out_dx = r.weight_dx = r.grad_out_dw = r.act_dw = OperandCast::none();
  return r;
}

Recipe forward_casts_for_training(const Recipe& recipe, bool bf16_activations) {
  Recipe r = forward_only(recipe);
  const OperandCast backward = bf16_activations ? OperandCast::bf16() : OperandCast::none();
  r.grad_out_dx = r.weight_dx = r.grad_out_dw = r.act_dw = backward;
  if (recipe_to_json(r) != recipe_to_json(recipe)) r.name += "-forward";
  return r;
}

namespace {

// `recipe` with every MX cast turned into bfloat16 where `to_bf16`.
Recipe mx_casts_to_bf16(const Recipe& recipe, bool to_bf16) {
  Recipe r = recipe;
  if (!to_bf16) return r;
  for (const RoleRef& role : kRoles) {
    OperandCast& c = r.*role.member;
    if (c.kind == OperandCast::Kind::kMx) c = OperandCast::bf16();
  }
  return r;
}

}  // namespace

bool has_block_rotation(const Recipe& recipe) {
  for (const RoleRef& role : kRoles) {
    if ((recipe.*role.member).is_rotated()) return true;
  }
  return false;
}

Recipe classifier_recipe(const Recipe& recipe) {
  return mx_casts_to_bf16(recipe, recipe.bf16_classifier);
}

Recipe attention_recipe(const Recipe& recipe) {
  return mx_casts_to_bf16(recipe, recipe.bf16_attention);
}

namespace {

std::string parse_recipe_text(std::string_view json_text, Recipe* out) {
  nlohmann::json j;
  if (std::string e = io::parse_json_text(json_text, &j); !e.empty()) return "recipe: " + e;
  if (!j.is_object()) return "recipe: expected a JSON object";
  Recipe r;
  r.name = "custom";
  if (j.contains("default")) {
    OperandCast c;
    if (std::string e = parse_cast(j["default"], "default", &c); !e.empty()) return e;
    r = uniform("custom", c);
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "default") continue;
    if (key == "name") {
      if (!value.is_string()) return "recipe: 'name' must be a string";
      r.name = value.get<std::string>();
      continue;
    }
    bool* flag = key == "bf16_vector_ops"   ? &r.bf16_vector_ops
                 : key == "bf16_classifier" ? &r.bf16_classifier
                 : key == "bf16_attention"  ? &r.bf16_attention
                                            : nullptr;
    if (flag != nullptr) {
      if (!value.is_boolean()) return "recipe: '" + key + "' must be true or false";
      *flag = value.get<bool>();
      continue;
    }
    bool matched = false;
    for (const RoleRef& role : kRoles) {
      if (key != role.name) continue;
      if (std::string e = parse_cast(value, role.name, &(r.*role.member)); !e.empty()) return e;
      matched = true;
    }
    if (!matched) return "recipe: unexpected field '" + key + "'";
  }
  *out = std::move(r);
  return "";
}

}  // namespace

std::string parse_recipe_json(std::string_view json_text, Recipe* out) {
  // The messages quote the recipe's own strings, which may hold a newline.
  return io::one_line(parse_recipe_text(json_text, out));
}

bool is_recipe_json_text(std::string_view spec) {
  const size_t first = spec.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && spec[first] == '{';
}

namespace {

std::string recipe_from_spec_text(std::string_view spec, Recipe* out) {
  if (std::optional<Recipe> preset = recipe_preset(spec)) {
    *out = *preset;
    return "";
  }
  if (is_recipe_json_text(spec)) return parse_recipe_json(spec, out);  // its messages say "recipe"
  // A recipe is a small JSON file; a device or FIFO named by mistake is refused, not read.
  std::error_code ec;
  const std::filesystem::path path{std::string(spec)};
  if (std::filesystem::exists(path, ec) && (!std::filesystem::is_regular_file(path, ec) ||
                                            std::filesystem::file_size(path, ec) > (1u << 20))) {
    return std::string(spec) + ": not a recipe file (a regular JSON file of at most 1 MB)";
  }
  std::ifstream in{path};
  if (!in) {
    std::string names;
    for (std::string_view n : recipe_preset_names()) {
      names += names.empty() ? "" : ", ";
      names += n;
    }
    return "unknown recipe '" + std::string(spec) + "' (not a preset: " + names +
           "; nor JSON text or a readable JSON file)";
  }
  std::stringstream text;
  text << in.rdbuf();
  if (std::string e = parse_recipe_json(text.str(), out); !e.empty()) {
    return std::string(spec) + ": " + e;
  }
  return "";
}

}  // namespace

std::string recipe_from_spec(std::string_view spec, Recipe* out) {
  // The messages quote the spec, which may hold a newline, and the recipe's own strings.
  return io::one_line(recipe_from_spec_text(spec, out));
}

std::string recipe_to_json(const Recipe& recipe) {
  nlohmann::json j = nlohmann::json::object();
  j["name"] = recipe.name;
  for (const RoleRef& role : kRoles) {
    const OperandCast& c = recipe.*role.member;
    if (c.kind != OperandCast::Kind::kMx) {
      j[std::string(role.name)] = c.kind == OperandCast::Kind::kBF16 ? "bf16" : "fp32";
      continue;
    }
    nlohmann::json spec = nlohmann::json::object();
    spec["format"] = std::string(traits(c.spec.format).mx_name);
    spec["block"] = c.spec.block_size;
    spec["scale"] = std::string(scale_rule_name(c.spec.scale_rule));
    spec["round"] = std::string(rounding_name(c.spec.rounding));
    spec["seed"] = c.spec.seed;
    spec["asym"] = c.spec.asymmetric;
    // Written only where set, so that the JSON of every unrotated recipe stays as it was.
    if (c.is_rotated()) spec["rotate"] = "hadamard";
    j[std::string(role.name)] = spec;
  }
  j["bf16_vector_ops"] = recipe.bf16_vector_ops;
  j["bf16_classifier"] = recipe.bf16_classifier;
  j["bf16_attention"] = recipe.bf16_attention;
  return j.dump();
}

std::string describe(const Recipe& recipe) {
  std::string s = recipe.name + ":";
  for (const RoleRef& role : kRoles) {
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on long operator+ chains.
    s += ' ';
    s += role.name;
    s += '=';
    s += describe_cast(recipe.*role.member);
    s += ';';
  }
  if (recipe.bf16_vector_ops) s += " vector-ops=bf16";
  if (recipe.bf16_classifier) s += " classifier=bf16";
  if (recipe.bf16_attention) s += " attention=bf16";
  return s;
}

}  // namespace mx::nn

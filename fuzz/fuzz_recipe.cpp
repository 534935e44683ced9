// libFuzzer target: parse_recipe_json over arbitrary bytes. A recipe that parses must be written
// by recipe_to_json as JSON that parses back to the same recipe, and describe() must take it.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "mx/nn/recipe.h"

using mx::fuzz::fail;
using mx::nn::Recipe;

namespace {

bool same(const Recipe& a, const Recipe& b) {
  return a.name == b.name && a.weight_fwd == b.weight_fwd && a.act_fwd == b.act_fwd &&
         a.grad_out_dx == b.grad_out_dx && a.weight_dx == b.weight_dx &&
         a.grad_out_dw == b.grad_out_dw && a.act_dw == b.act_dw &&
         a.bf16_vector_ops == b.bf16_vector_ops && a.bf16_classifier == b.bf16_classifier &&
         a.bf16_attention == b.bf16_attention;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Recipe recipe;
  const std::string e = mx::nn::parse_recipe_json(text, &recipe);
  mx::fuzz::check_error(e);
  if (!e.empty()) return 0;
  mx::fuzz::touch(mx::nn::describe(recipe));
  const std::string written = mx::nn::recipe_to_json(recipe);
  Recipe back;
  if (const std::string r = mx::nn::parse_recipe_json(written, &back); !r.empty()) {
    fail("a recipe's own JSON does not parse:", r);
  }
  if (!same(back, recipe)) fail("JSON round trip changes the recipe:", written);
  if (mx::nn::recipe_to_json(back) != written) fail("JSON round trip changes the text");
  return 0;
}

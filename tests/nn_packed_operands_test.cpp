// Which products take their MX operands as codes and scales (mx/nn/packed_operands.h): the
// casts of every MX preset do, on shapes of whole blocks; casts whose codes need more than a
// scale to decode, or blocks the products do not read, do not.
#include <gtest/gtest.h>

#include "mx/nn/packed_operands.h"
#include "mx/nn/recipe.h"

namespace mx::nn {
namespace {

OperandCast mx_cast(ElementFormat format) {
  QuantSpec spec;
  spec.format = format;
  return OperandCast::mx(spec);
}

TEST(PackedOperands, EveryMxPresetsLinearCastsReachTheProductsPacked) {
  for (const char* name : {"mxint8", "mxfp8", "mxfp6", "mxfp4w-mxfp6a", "mxfp4"}) {
    const Recipe r = *recipe_preset(name);
    for (const OperandCast* c :
         {&r.act_fwd, &r.weight_fwd, &r.grad_out_dx, &r.weight_dx, &r.grad_out_dw, &r.act_dw}) {
      EXPECT_TRUE(cast_reaches_products_packed(*c)) << name;
    }
  }
}

TEST(PackedOperands, CastsThatAreNotPlainBlocksOf32DoNot) {
  EXPECT_FALSE(cast_reaches_products_packed(OperandCast::none()));
  EXPECT_FALSE(cast_reaches_products_packed(OperandCast::bf16()));
  EXPECT_FALSE(cast_reaches_products_packed(mx_cast(ElementFormat::kInt2)));  // 2-bit codes
  OperandCast asymmetric = mx_cast(ElementFormat::kInt4);
  asymmetric.spec.asymmetric = true;  // an offset to add after the product
  EXPECT_FALSE(cast_reaches_products_packed(asymmetric));
  OperandCast blocks16 = mx_cast(ElementFormat::kE4M3);
  blocks16.spec.block_size = 16;
  EXPECT_FALSE(cast_reaches_products_packed(blocks16));
  OperandCast tiles = mx_cast(ElementFormat::kE4M3);
  tiles.spec.tile_rows = tiles.spec.tile_cols = 8;
  EXPECT_FALSE(cast_reaches_products_packed(tiles));
  OperandCast rotated = mx_cast(ElementFormat::kE2M1);
  rotated.rotation = BlockRotation::kHadamard;
  EXPECT_FALSE(cast_reaches_products_packed(rotated));
  EXPECT_TRUE(cast_reaches_products_packed(mx_cast(ElementFormat::kInt4)));
}

TEST(PackedOperands, ProductsNeedBothCastsAndWholeBlocksInEveryDimension) {
  const OperandCast fp6 = mx_cast(ElementFormat::kE3M2), fp4 = mx_cast(ElementFormat::kE2M1);
  EXPECT_TRUE(product_takes_packed_operands(fp6, fp4, {16384, 768, 2304}));
  EXPECT_FALSE(product_takes_packed_operands(fp6, OperandCast::bf16(), {64, 64, 64}));
  EXPECT_FALSE(product_takes_packed_operands(fp6, fp6, {16384, 768, 50257}));  // a vocabulary
  EXPECT_FALSE(product_takes_packed_operands(fp6, fp6, {1, 768, 768}));        // one token
  EXPECT_FALSE(product_takes_packed_operands(fp6, fp6, {0, 64, 64}));
}

}  // namespace
}  // namespace mx::nn

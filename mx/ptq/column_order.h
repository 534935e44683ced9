// The order in which error diffusion quantizes a weight's input columns (docs/NUMERICS.md §17).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace mx::ptq {

enum class ColumnOrder {
  kNatural,     // input features in index order
  kActBlocks,   // activation order by whole blocks: the groups of `group` input columns that
                // the MX blocks span, by descending sum of diag(H), and the columns inside a
                // group by descending diag(H); a block's columns stay together
  kActColumns,  // activation order by column alone: descending diag(H); a block's columns
                // scatter over the order
};

std::string_view column_order_name(ColumnOrder order);
std::optional<ColumnOrder> parse_column_order(std::string_view name);

// order[p] = the input column quantized p-th, for k = diag.size() columns. Ties keep index
// order, so an H with equal diagonal entries gives the natural order under every rule.
// `group` (>= 1): how many consecutive input columns one MX block spans (kActBlocks only).
std::vector<int64_t> column_order(std::span<const float> diag, int64_t group, ColumnOrder order);

}  // namespace mx::ptq

#include "mx/ptq/column_order.h"

#include <algorithm>
#include <numeric>

namespace mx::ptq {
namespace {

// The indices [first, last) sorted by descending key, ties in index order.
void sort_descending(std::vector<int64_t>::iterator first, std::vector<int64_t>::iterator last,
                     const std::vector<double>& key) {
  std::stable_sort(first, last,
                   [&](int64_t a, int64_t b) { return key[size_t(a)] > key[size_t(b)]; });
}

}  // namespace

std::string_view column_order_name(ColumnOrder order) {
  switch (order) {
    case ColumnOrder::kNatural:
      return "natural";
    case ColumnOrder::kActBlocks:
      return "act-blocks";
    case ColumnOrder::kActColumns:
      return "act-columns";
  }
  return "?";
}

std::optional<ColumnOrder> parse_column_order(std::string_view name) {
  for (ColumnOrder o : {ColumnOrder::kNatural, ColumnOrder::kActBlocks, ColumnOrder::kActColumns}) {
    if (column_order_name(o) == name) return o;
  }
  return std::nullopt;
}

std::vector<int64_t> column_order(std::span<const float> diag, int64_t group, ColumnOrder order) {
  const int64_t k = int64_t(diag.size());
  std::vector<int64_t> columns(static_cast<size_t>(k));
  std::iota(columns.begin(), columns.end(), int64_t{0});
  if (order == ColumnOrder::kNatural) return columns;
  const std::vector<double> d(diag.begin(), diag.end());
  if (order == ColumnOrder::kActColumns) {
    sort_descending(columns.begin(), columns.end(), d);
    return columns;
  }
  const int64_t groups = (k + group - 1) / group;
  std::vector<double> weight(size_t(groups), 0.0);
  for (int64_t c = 0; c < k; ++c) weight[size_t(c / group)] += d[size_t(c)];
  std::vector<int64_t> by_weight(static_cast<size_t>(groups));
  std::iota(by_weight.begin(), by_weight.end(), int64_t{0});
  sort_descending(by_weight.begin(), by_weight.end(), weight);
  std::vector<int64_t> out;
  out.reserve(size_t(k));
  for (const int64_t g : by_weight) {
    const auto first = out.end() - out.begin();
    for (int64_t c = g * group; c < std::min(k, (g + 1) * group); ++c) out.push_back(c);
    sort_descending(out.begin() + first, out.end(), d);
  }
  return out;
}

}  // namespace mx::ptq

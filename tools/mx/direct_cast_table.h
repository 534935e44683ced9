// The direct-cast table that `mx eval` and `mx demo` print: the FP32 reference row, then loss,
// perplexity, KL and top-1 agreement per recipe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "mx/train/evaluate.h"

namespace mx::tools {

void print_direct_cast_table(
    const std::vector<std::pair<std::string, train::DirectCastResult>>& rows);

}  // namespace mx::tools

#include "mx/convert/convert_report.h"

namespace mx::convert {

int64_t ConvertReport::count(TensorAction action) const {
  int64_t n = 0;
  for (const TensorOutcome& t : tensors) n += t.action == action ? 1 : 0;
  return n;
}

uint64_t ConvertReport::bytes_in() const {
  uint64_t n = 0;
  for (const TensorOutcome& t : tensors) n += t.bytes_in;
  return n;
}

uint64_t ConvertReport::bytes_out() const {
  uint64_t n = 0;
  for (const TensorOutcome& t : tensors) n += t.bytes_out;
  return n;
}

}  // namespace mx::convert

// Uses the installed library as any program would: quantizes the row 1..32 to MXFP4 and checks
// what the MX definition gives. amax 32 sets the scale 2^(floor(log2 32) - emax 2) = 8, byte
// 127 + 3 = 130; 32 / 8 = 4 is an E2M1 value and decodes to 32; 5 / 8 = 0.625 rounds to 0.5,
// which decodes to 4. The .npy encoder shows that mxkit::io links too.
#include <cstdio>
#include <string>
#include <vector>

#include "mx/core/quant_spec.h"
#include "mx/io/npy.h"
#include "mx/kernels/cpu/quantize.h"

int main() {
  std::vector<float> row(32);
  for (int i = 0; i < 32; ++i) row[i] = float(i + 1);
  mx::QuantSpec spec;
  spec.format = mx::ElementFormat::kE2M1;
  const std::vector<int64_t> shape = {1, 32};
  mx::MxTensor t;
  if (std::string e = mx::cpu::quantize(row.data(), mx::DType::kF32, shape, spec, &t); !e.empty()) {
    std::fprintf(stderr, "quantize: %s\n", e.c_str());
    return 1;
  }
  std::vector<float> back(32);
  if (std::string e = mx::cpu::dequantize(t, mx::DType::kF32, back.data()); !e.empty()) {
    std::fprintf(stderr, "dequantize: %s\n", e.c_str());
    return 1;
  }
  mx::io::NpyArray npy{mx::io::NpyDType::kUInt8, {int64_t(t.elements.size())}, t.elements};
  std::vector<uint8_t> file;
  const std::string npy_error = mx::io::encode_npy(npy, &file);
  const bool ok = t.scales.size() == 1 && t.scales[0] == 130 && back[31] == 32.0f &&
                  back[4] == 4.0f && npy_error.empty() && file.size() > 6 && file[1] == 'N';
  std::printf("%s: scale byte %d, 32 -> %g, 5 -> %g, %zu-byte .npy of the codes\n",
              ok ? "ok" : "FAIL", t.scales.empty() ? -1 : int(t.scales[0]), back[31], back[4],
              file.size());
  return ok ? 0 : 1;
}

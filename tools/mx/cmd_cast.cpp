// `mx cast IN.npy -o OUT.npy`: quantizes a float32, float16 or bfloat16 array with the fast CPU
// path and writes one view of the result. Every check runs before the output is written, and
// the write is atomic, so a failed cast leaves no output file and an old one untouched.
#include <fmt/format.h>

#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/npy.h"
#include "mx/kernels/cpu/quantize.h"
#ifdef MX_HAVE_CUDA
#include "mx/kernels/cuda/host_cast.h"
#endif
#include "tools/mx/commands.h"
#include "tools/mx/run_command.h"
#include "tools/mx/spec_flags.h"

namespace mx::tools {
namespace {

using io::format_shape;

enum class Emit { kDequant, kCodes, kScales, kPacked };

std::optional<Emit> parse_emit(std::string_view name) {
  if (name == "dequant") return Emit::kDequant;
  if (name == "codes") return Emit::kCodes;
  if (name == "scales") return Emit::kScales;
  if (name == "packed") return Emit::kPacked;
  return std::nullopt;
}

struct CastOptions {
  std::string input;
  std::string output;
  std::string emit = "dequant";
  std::string device = "cpu";
  bool quiet = false;
  SpecFlags spec;
};

// Quantizes on the chosen device: the CPU fast path, or the CUDA kernels (same bytes).
std::string quantize_on(const std::string& device, const io::NpyArray& in, DType dtype,
                        const QuantSpec& spec, const cpu::Options& cpu_options, MxTensor* t) {
  if (device == "cpu") return cpu::quantize(in.data.data(), dtype, in.shape, spec, t, cpu_options);
#ifdef MX_HAVE_CUDA
  return cuda::quantize_on_device(in.data.data(), dtype, in.shape, spec, t);
#else
  (void)in, (void)dtype, (void)spec, (void)t;
  return "this build of mx has no CUDA kernels (nvcc was not found when it was configured)";
#endif
}

std::string dequantize_on(const std::string& device, const MxTensor& t,
                          const cpu::Options& cpu_options, void* out) {
  if (device == "cpu") return cpu::dequantize(t, DType::kF32, out, cpu_options);
#ifdef MX_HAVE_CUDA
  return cuda::dequantize_on_device(t, DType::kF32, out);
#else
  (void)t, (void)out;
  return "this build of mx has no CUDA kernels";
#endif
}

std::string make_output(Emit emit, const MxTensor& t, const BlockGrid& grid,
                        const std::string& device, const cpu::Options& cpu_options,
                        io::NpyArray* out) {
  out->dtype = io::NpyDType::kUInt8;
  switch (emit) {
    case Emit::kDequant:
      out->dtype = io::NpyDType::kFloat32;
      out->shape = t.shape;
      out->data.resize(static_cast<size_t>(element_count(t.shape)) * 4);
      return dequantize_on(device, t, cpu_options, out->data.data());
    case Emit::kCodes:
      out->shape = t.shape;
      out->data = element_codes(t, grid);
      break;
    case Emit::kScales:
      out->shape = grid.scale_shape;
      out->data = t.scales;
      break;
    case Emit::kPacked:
      out->shape = {static_cast<int64_t>(t.elements.size())};
      out->data = t.elements;
      break;
  }
  return "";
}

std::string run_cast(const CastOptions& o) {
  if (std::string e = io::check_output_file(o.output); !e.empty()) return e;
  QuantSpec spec;
  if (std::string e = build_spec(o.spec, &spec); !e.empty()) return e;
  cpu::Options cpu_options;
  if (std::string e = build_cpu_options(o.spec, &cpu_options); !e.empty()) return e;
  const std::optional<Emit> emit = parse_emit(o.emit);
  if (!emit) return "unknown --emit '" + o.emit + "' (expected dequant, codes, scales or packed)";
  if (o.device != "cpu" && o.device != "cuda") {
    return "unknown --device '" + o.device + "' (expected cpu or cuda)";
  }

  io::NpyArray in;
  if (std::string e = io::read_npy(o.input, &in); !e.empty()) return e;
  const std::optional<DType> dtype = io::to_float_dtype(in.dtype);
  if (!dtype) {
    return o.input + ": dtype " + std::string(io::npy_dtype_name(in.dtype)) +
           " cannot be quantized (expected float32, float16 or bfloat16)";
  }
  std::string error;
  const BlockGrid grid = make_block_grid(in.shape, spec, &error);
  if (!error.empty()) return o.input + ": " + error;
  MxTensor t;
  if (std::string e = quantize_on(o.device, in, *dtype, spec, cpu_options, &t); !e.empty()) {
    return e;
  }

  io::NpyArray out;
  if (std::string e = make_output(*emit, t, grid, o.device, cpu_options, &out); !e.empty())
    return e;
  if (std::string e = io::write_npy(o.output, out); !e.empty()) return e;
  if (!o.quiet) {
    fmt::print("{}: {} {} -> {} block{}, {:g} bits/element; wrote {} {} {} to {}\n", describe(spec),
               io::npy_dtype_name(in.dtype), format_shape(in.shape), grid.num_blocks(),
               grid.num_blocks() == 1 ? "" : "s", bits_per_element(spec), o.emit,
               io::npy_dtype_name(out.dtype), format_shape(out.shape), o.output);
  }
  return "";
}

}  // namespace

void register_cast(CLI::App& app) {
  static CastOptions options;
  CLI::App* cmd = app.add_subcommand("cast", "Quantize a .npy array to an MX format");
  cmd->add_option("input", options.input, "Input .npy (float32, float16 or bfloat16)")
      ->type_name("IN.npy")
      ->required();
  cmd->add_option("-o,--output", options.output, "Output .npy (replaced atomically)")
      ->type_name("OUT.npy")
      ->required();
  cmd->add_option("--emit", options.emit,
                  "What to write: dequant (float32 values), codes (uint8 per element), scales "
                  "(E8M0 bytes, scale-grid shape) or packed (element bytes, 1-D)")
      ->type_name("WHAT")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", options.quiet, "Print nothing on success");
  cmd->add_option("--device", options.device,
                  "Where to quantize: cpu, or cuda (the GPU kernels; same bytes)")
      ->type_name("cpu|cuda")
      ->capture_default_str();
  add_spec_flags(cmd, &options.spec);
  cmd->callback([] { run_command("cast", [] { return run_cast(options); }); });
}

}  // namespace mx::tools

// `mx inspect FILE`: the tensors of a safetensors (plain or MX), GGUF or llama2.c checkpoint,
// with sizes and the compression against BF16. The reading is mx/convert/inspect_checkpoint.h;
// this file prints it as a table or, with --json, as one JSON object.
#include <fmt/format.h>

#include <algorithm>
#include <new>
#include <string>

#include "mx/convert/inspect_checkpoint.h"
#include "tools/mx/commands.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct InspectOptions {
  std::string input;
  bool json = false;
  bool metadata = false;
};

std::string shape_text(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string ratio_text(std::optional<double> r) {
  return r ? fmt::format("{:.2f}x", *r) : "-";
}

void print_table(const convert::Inspection& in, bool with_metadata) {
  fmt::print("{}: {}, {} tensors ({} MX), {} parameters, {} bytes\n", in.path,
             io::container_name(in.container), in.tensors.size(), in.mx_count(), in.parameters(),
             in.file_bytes);
  if (with_metadata) {
    for (const auto& [key, value] : in.metadata) fmt::print("  {} = {}\n", key, value);
  } else if (!in.metadata.empty()) {
    fmt::print("{} metadata entries (--metadata lists them)\n", in.metadata.size());
  }
  size_t name_w = 5, dtype_w = 5, shape_w = 5;
  for (const convert::InspectedTensor& t : in.tensors) {
    name_w = std::max(name_w, t.name.size());
    dtype_w = std::max(dtype_w, t.dtype.size());
    shape_w = std::max(shape_w, shape_text(t.shape).size());
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}  {:>7}  {}\n", "NAME", name_w, "DTYPE", dtype_w,
             "SHAPE", shape_w, "BYTES", "VS BF16", "SPEC");
  for (const convert::InspectedTensor& t : in.tensors) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}  {:>7}{}{}\n", t.name, name_w, t.dtype, dtype_w,
               shape_text(t.shape), shape_w, t.bytes, ratio_text(t.ratio()),
               t.spec_text.empty() ? "" : "  ", t.spec_text);
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>12}  {:>7}\n", "total", name_w, "", dtype_w, "", shape_w,
             in.bytes(), ratio_text(in.ratio()));
}

std::string run_inspect(const InspectOptions& o) {
  convert::Inspection in;
  if (std::string e = convert::inspect_checkpoint(o.input, &in); !e.empty()) return e;
  if (o.json) {
    fmt::print("{}\n", convert::inspection_json(in));
  } else {
    print_table(in, o.metadata);
  }
  return "";
}

}  // namespace

void register_inspect(CLI::App& app) {
  static InspectOptions options;
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List a checkpoint's tensors: dtype, shape, bytes, ratio to BF16, MX spec");
  cmd->footer(
      "Reads safetensors (plain or MX), GGUF and llama2.c .bin checkpoints. An MX tensor's\n"
      "parts (NAME.blocks, NAME.scales, NAME.offsets) are listed as one tensor NAME. The ratio\n"
      "is the tensor's size in BF16 over its stored size; non-float tensors have none and\n"
      "count at their own size in the total.");
  cmd->add_option("file", options.input, "Checkpoint: .safetensors, .gguf or llama2.c .bin")
      ->type_name("FILE")
      ->required();
  cmd->add_flag("--json", options.json, "Print one JSON object instead of the table");
  cmd->add_flag("--metadata", options.metadata, "List the metadata entries too");
  cmd->callback([] { run_command("inspect", [] { return run_inspect(options); }); });
}

}  // namespace mx::tools

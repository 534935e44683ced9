// The storage layouts of other programs: ggml's block_mxfp4, gpt-oss's blocks/scales pair and
// the 128x4 swizzled scales of block-scaled GEMMs; and the weight tiles of mxkit's GPU
// weight-only product (mx/core/layout_*.h).
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mx/core/layout_ggml.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/core/layout_swizzle.h"
#include "mx/core/layout_weight_tiles.h"
#include "python/binding.h"
#include "python/mx_array.h"

namespace mx::python {
namespace {

// The bytes of a uint8 numpy array, C-contiguous; TypeError naming `what` for another dtype.
py::array byte_array(const py::handle& x, const char* what) {
  py::array a = contiguous_array(x, what);
  if (a.dtype().attr("name").cast<std::string>() != "uint8") {
    throw py::type_error(std::string(what) + " must be a uint8 array, not " +
                         a.dtype().attr("name").cast<std::string>());
  }
  return a;
}

py::array to_ggml(const MxArray& a) {
  std::string error;
  std::vector<uint8_t> bytes = to_ggml_mxfp4_bytes(a.tensor, &error);
  check(error);
  std::vector<int64_t> shape = a.grid.scale_shape;  // [..., N, K/32]
  shape.push_back(int64_t{sizeof(BlockMxfp4)});
  return array_owning(std::move(bytes), shape, py::dtype::of<uint8_t>());
}

MxArray from_ggml(const py::handle& blocks, const std::vector<int64_t>& shape) {
  const py::array bytes = byte_array(blocks, "blocks");
  std::string error;
  MxTensor t = from_ggml_mxfp4_bytes(bytes_of(bytes), shape, &error);
  check(error);
  return make_mx_array(std::move(t));
}

py::tuple to_gpt_oss_pair(const MxArray& a) {
  std::string error;
  GptOssMxfp4 g = to_gpt_oss(a.tensor, &error);
  check(error);
  const py::dtype u8 = py::dtype::of<uint8_t>();
  return py::make_tuple(array_owning(std::move(g.blocks), g.blocks_shape, u8),
                        array_owning(std::move(g.scales), g.scales_shape, u8));
}

MxArray from_gpt_oss_pair(const py::handle& blocks, const py::handle& scales) {
  const py::array b = byte_array(blocks, "blocks");
  const py::array s = byte_array(scales, "scales");
  const std::span<const uint8_t> block_bytes = bytes_of(b), scale_bytes = bytes_of(s);
  GptOssMxfp4 g{{block_bytes.begin(), block_bytes.end()},
                shape_of(b),
                {scale_bytes.begin(), scale_bytes.end()},
                shape_of(s)};
  std::string error;
  MxTensor t = from_gpt_oss(g, &error);
  check(error);
  return make_mx_array(std::move(t));
}

// A 2-D scale matrix, or an MxArray's scales as the GEMMs read them.
py::array swizzle(const py::handle& scales) {
  std::string error;
  std::vector<uint8_t> out;
  if (py::isinstance<MxArray>(scales)) {
    out = swizzle_tensor_scales(scales.cast<const MxArray&>().tensor, &error);
  } else {
    const py::array s = byte_array(scales, "scales");
    if (s.ndim() != 2) {
      throw py::value_error("scales must be 2-D (rows, cols), not " + std::to_string(s.ndim()) +
                            "-D");
    }
    out = swizzle_scales(bytes_of(s), s.shape(0), s.shape(1), &error);
  }
  check(error);
  const int64_t n = static_cast<int64_t>(out.size());
  return array_owning(std::move(out), std::span(&n, 1), py::dtype::of<uint8_t>());
}

py::array unswizzle(const py::handle& swizzled, int64_t rows, int64_t cols) {
  const py::array s = byte_array(swizzled, "swizzled");
  std::string error;
  std::vector<uint8_t> out = unswizzle_scales(bytes_of(s), rows, cols, &error);
  check(error);
  const int64_t shape[] = {rows, cols};
  return array_owning(std::move(out), shape, py::dtype::of<uint8_t>());
}

// The weight tiles of a 2-D array in symmetric blocks of 32 along its last axis.
py::tuple to_tiles(const MxArray& a) {
  const QuantSpec& spec = a.tensor.spec;
  const bool rowwise = !spec.is_tiled() && spec.block_size == 32 &&
                       (spec.axis == -1 || spec.axis == 1) && !spec.asymmetric;
  if (a.tensor.shape.size() != 2 || !rowwise) {
    throw py::value_error("weight tiles need a 2-D array in symmetric blocks of 32 along axis -1");
  }
  std::string error;
  WeightTiles t = to_weight_tiles(spec.format, a.tensor.shape[0], a.tensor.shape[1],
                                  a.tensor.elements, a.tensor.scales, &error);
  check(error);
  const int64_t code_bytes = static_cast<int64_t>(t.codes.size());
  const int64_t scale_bytes = static_cast<int64_t>(t.scales.size());
  const py::dtype u8 = py::dtype::of<uint8_t>();
  return py::make_tuple(array_owning(std::move(t.codes), std::span(&code_bytes, 1), u8),
                        array_owning(std::move(t.scales), std::span(&scale_bytes, 1), u8));
}

MxArray from_tiles(const py::handle& codes, const py::handle& scales, const std::string& format,
                   int64_t n, int64_t k) {
  const std::optional<ElementFormat> f = parse_format(format);
  if (!f) throw py::value_error("unknown element format '" + format + "'");
  const py::array c = byte_array(codes, "codes");
  const py::array s = byte_array(scales, "scales");
  const std::span<const uint8_t> code_bytes = bytes_of(c), scale_bytes = bytes_of(s);
  const WeightTiles tiles{
      *f, n, k, {code_bytes.begin(), code_bytes.end()}, {scale_bytes.begin(), scale_bytes.end()}};
  std::vector<uint8_t> elements, block_scales;
  check(from_weight_tiles(tiles, &elements, &block_scales));
  QuantSpec spec;
  spec.format = *f;
  const int64_t shape[] = {n, k};
  std::string error;
  MxTensor out = make_mx_tensor(shape, spec, &error);
  check(error);
  out.elements = std::move(elements);
  out.scales = std::move(block_scales);
  return make_mx_array(std::move(out));
}

}  // namespace

void add_layouts(py::module_& m) {
  m.def("to_ggml_mxfp4", &to_ggml, py::arg("a"),
        "ggml's block_mxfp4 bytes of an MXFP4 array in row-wise blocks of 32: uint8 "
        "[..., N, K/32, 17], each block its scale byte then 16 bytes of nibbles.");
  m.def("from_ggml_mxfp4", &from_ggml, py::arg("blocks"), py::arg("shape"),
        "The MxArray of `shape` stored in ggml block_mxfp4 bytes (17 per block).");
  m.def("to_gpt_oss", &to_gpt_oss_pair, py::arg("a"),
        "gpt-oss's (blocks [..., N, K/32, 16], scales [..., N, K/32]) of an MXFP4 array in "
        "row-wise blocks of 32.");
  m.def("from_gpt_oss", &from_gpt_oss_pair, py::arg("blocks"), py::arg("scales"),
        "The MxArray of a gpt-oss blocks/scales pair.");
  m.def("swizzle_scales", &swizzle, py::arg("scales"),
        "Scales in the 128x4 tiled layout of block-scaled GEMMs (cuBLASLt VEC32_UE8M0), padded "
        "with zeros: from a uint8 (rows, cols) matrix, or from an MxArray in 1-D blocks along "
        "its last axis.");
  m.def("unswizzle_scales", &unswizzle, py::arg("swizzled"), py::arg("rows"), py::arg("cols"),
        "The (rows, cols) scale matrix held in swizzled bytes.");
  m.def("to_weight_tiles", &to_tiles, py::arg("a"),
        "(codes, scales) of a 2-D array in symmetric blocks of 32 along its last axis, in the "
        "weight-tile layout of the GPU weight-only product (mx/core/layout_weight_tiles.h).");
  m.def("from_weight_tiles", &from_tiles, py::arg("codes"), py::arg("scales"), py::arg("format"),
        py::arg("n"), py::arg("k"), "The [n, k] MxArray held in weight-tile codes and scales.");
  m.def(
      "_weight_tile_bytes",
      [](const std::string& format, int64_t n, int64_t k) {
        const std::optional<ElementFormat> f = parse_format(format);
        if (!f) throw py::value_error("unknown element format '" + format + "'");
        if (n < 0 || k < 0) throw py::value_error("weight tiles: negative dimension");
        return py::make_tuple(weight_tile_code_bytes(*f, n, k), weight_tile_scale_bytes(n, k));
      },
      py::arg("format"), py::arg("n"), py::arg("k"),
      "(code bytes, scale bytes) of an [n, k] matrix in weight tiles.");
}

}  // namespace mx::python

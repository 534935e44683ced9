// The CUDA kernels over device memory that another library owns. mxkit.torch passes a tensor's
// data pointer, PyTorch's current stream and the tensor's device; the kernels are enqueued on
// that stream and nothing synchronises. Sizes are the caller's duty: buffers are laid out as
// _storage_layout says, as the library's quantize_cuda documents.
#include <cuda_runtime_api.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mx/core/format.h"
#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/mx_gemm_route.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "python/binding.h"

namespace mx::python {
namespace {

template <class T = void>
T* device_pointer(uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

cudaStream_t stream_handle(uintptr_t address) {
  return reinterpret_cast<cudaStream_t>(address);
}

// Runs `work` on `device` with the GIL released; ValueError with its message if it fails. The
// library's functions check their own launches.
template <class Work>
void on_device(int device, Work work) {
  std::string error;
  {
    py::gil_scoped_release release;
    int current = -1;
    cudaError_t status = cudaGetDevice(&current);
    if (status == cudaSuccess && current != device) status = cudaSetDevice(device);
    if (status != cudaSuccess) {
      error =
          std::string("CUDA device ") + std::to_string(device) + ": " + cudaGetErrorString(status);
    } else {
      error = work();
      if (current >= 0 && current != device) cudaSetDevice(current);
    }
  }
  check(error);
}

ElementFormat format_named(const std::string& name) {
  if (const std::optional<ElementFormat> f = parse_format(name)) return *f;
  throw py::value_error("unknown element format '" + name + "'");
}

// The arguments of an MX product over device memory that the caller owns.
cuda::MxGemmArgs gemm_args(int64_t rows, int64_t cols, int64_t depth, uintptr_t a_packed,
                           uintptr_t a_scales, const std::string& a_format, uintptr_t b_packed,
                           uintptr_t b_scales, const std::string& b_format, uintptr_t bias,
                           uintptr_t out, const py::str& out_dtype) {
  cuda::MxGemmArgs args;
  args.m = rows;
  args.n = cols;
  args.k = depth;
  args.a = {device_pointer<const uint8_t>(a_packed), device_pointer<const uint8_t>(a_scales),
            format_named(a_format)};
  args.b = {device_pointer<const uint8_t>(b_packed), device_pointer<const uint8_t>(b_scales),
            format_named(b_format)};
  args.bias = device_pointer<const float>(bias);
  args.out_dtype = dtype_argument(out_dtype, "out_dtype");
  args.d = device_pointer(out);
  return args;
}

// One cuBLASLt handle per device, made on first use and kept for the life of the process (a
// handle is cheap to keep and costly to make per call; destroying it at exit could run after
// the CUDA runtime has shut down). Null with the reason in *why where cuBLASLt cannot be opened.
cublasLtHandle_t lt_handle(int device, std::string* why) {
  static std::mutex mutex;
  static std::map<int, cublasLtHandle_t> handles;
  const std::lock_guard<std::mutex> lock(mutex);
  if (auto it = handles.find(device); it != handles.end()) return it->second;
  const cuda::CublasLt* lt = cuda::cublaslt(why);
  if (lt == nullptr) return nullptr;
  cublasLtHandle_t handle = nullptr;
  if (lt->create(&handle) != CUBLAS_STATUS_SUCCESS) {
    *why = "cannot create a cuBLASLt handle on CUDA device " + std::to_string(device);
    return nullptr;
  }
  handles[device] = handle;
  return handle;
}

}  // namespace

void add_cuda(py::module_& m) {
  m.def(
      "_cuda_fake_quantize",
      [](uintptr_t x, const py::str& dtype, std::vector<int64_t> shape, uintptr_t out,
         const py::str& out_dtype, uintptr_t stream, int device, const py::dict& spec) {
        const QuantSpec s = spec_from_dict(spec);
        const DType in = dtype_argument(dtype, "dtype"),
                    to = dtype_argument(out_dtype, "out_dtype");
        on_device(device, [&] {
          return cuda::fake_quantize_cuda(device_pointer(x), in, shape, s, to, device_pointer(out),
                                          stream_handle(stream));
        });
      },
      py::arg("x"), py::arg("dtype"), py::arg("shape"), py::arg("out"), py::arg("out_dtype"),
      py::arg("stream"), py::arg("device"), py::arg("spec"));
  m.def(
      "_cuda_quantize",
      [](uintptr_t x, const py::str& dtype, std::vector<int64_t> shape, uintptr_t packed,
         uintptr_t scales, uintptr_t offsets, uintptr_t stream, int device, const py::dict& spec) {
        const QuantSpec s = spec_from_dict(spec);
        const DType in = dtype_argument(dtype, "dtype");
        on_device(device, [&] {
          return cuda::quantize_cuda(device_pointer(x), in, shape, s,
                                     device_pointer<uint8_t>(packed),
                                     device_pointer<uint8_t>(scales),
                                     device_pointer<uint16_t>(offsets), stream_handle(stream));
        });
      },
      py::arg("x"), py::arg("dtype"), py::arg("shape"), py::arg("packed"), py::arg("scales"),
      py::arg("offsets"), py::arg("stream"), py::arg("device"), py::arg("spec"));
  m.def(
      "_cuda_dequantize",
      [](uintptr_t packed, uintptr_t scales, uintptr_t offsets, std::vector<int64_t> shape,
         uintptr_t out, const py::str& out_dtype, uintptr_t stream, int device,
         const py::dict& spec) {
        const QuantSpec s = spec_from_dict(spec);
        const DType to = dtype_argument(out_dtype, "out_dtype");
        on_device(device, [&] {
          return cuda::dequantize_cuda(device_pointer<const uint8_t>(packed),
                                       device_pointer<const uint8_t>(scales),
                                       device_pointer<const uint16_t>(offsets), shape, s, to,
                                       device_pointer(out), stream_handle(stream));
        });
      },
      py::arg("packed"), py::arg("scales"), py::arg("offsets"), py::arg("shape"), py::arg("out"),
      py::arg("out_dtype"), py::arg("stream"), py::arg("device"), py::arg("spec"));
  m.def(
      "_cuda_quantize_dual",
      [](uintptr_t x, const py::str& dtype, std::vector<int64_t> shape,
         std::vector<uintptr_t> row_buffers, std::vector<uintptr_t> col_buffers, uintptr_t stream,
         int device, const py::dict& spec) {
        const QuantSpec s = spec_from_dict(spec);
        const DType in = dtype_argument(dtype, "dtype");
        if (row_buffers.size() != 3 || col_buffers.size() != 3) {
          throw py::value_error("dual quantize takes (packed, scales, offsets) for each side");
        }
        auto buffers = [](const std::vector<uintptr_t>& b) {
          return cuda::MxDeviceBuffers{device_pointer<uint8_t>(b[0]), device_pointer<uint8_t>(b[1]),
                                       device_pointer<uint16_t>(b[2])};
        };
        const cuda::MxDeviceBuffers rows = buffers(row_buffers), cols = buffers(col_buffers);
        on_device(device, [&] {
          return cuda::quantize_dual_cuda(device_pointer(x), in, shape, s, rows, cols,
                                          stream_handle(stream));
        });
      },
      py::arg("x"), py::arg("dtype"), py::arg("shape"), py::arg("rows"), py::arg("cols"),
      py::arg("stream"), py::arg("device"), py::arg("spec"));
  // The MX product takes the device's fastest route (mx_gemm_route.h). The caller asks for the
  // route and its workspace first, allocates the workspace (PyTorch's allocator, on its stream),
  // then runs the product with it; "none" sends it to its own fallback.
  m.def(
      "_cuda_mx_gemm_route",
      [](int64_t rows, int64_t cols, int64_t depth, uintptr_t a_packed, uintptr_t a_scales,
         const std::string& a_format, uintptr_t b_packed, uintptr_t b_scales,
         const std::string& b_format, uintptr_t bias, uintptr_t out, const py::str& out_dtype,
         int device) {
        const cuda::MxGemmArgs args = gemm_args(rows, cols, depth, a_packed, a_scales, a_format,
                                                b_packed, b_scales, b_format, bias, out, out_dtype);
        cuda::MxGemmRoute route = cuda::MxGemmRoute::kNone;
        size_t bytes = 0;
        on_device(device, [&] {
          std::string why;
          route = cuda::mx_gemm_auto_route(args, &why);
          bytes = cuda::mx_gemm_auto_workspace_bytes(args);
          return std::string();
        });
        return py::make_tuple(cuda::mx_gemm_route_name(route), bytes);
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("a_packed"), py::arg("a_scales"),
      py::arg("a_format"), py::arg("b_packed"), py::arg("b_scales"), py::arg("b_format"),
      py::arg("bias"), py::arg("out"), py::arg("out_dtype"), py::arg("device"),
      "(route name, workspace bytes) of _cuda_mx_gemm's product on the device; route 'none' "
      "where no route takes the arguments.");
  m.def(
      "_cuda_mx_gemm",
      [](int64_t rows, int64_t cols, int64_t depth, uintptr_t a_packed, uintptr_t a_scales,
         const std::string& a_format, uintptr_t b_packed, uintptr_t b_scales,
         const std::string& b_format, uintptr_t bias, uintptr_t out, const py::str& out_dtype,
         uintptr_t workspace, size_t workspace_bytes, uintptr_t stream, int device) {
        const cuda::MxGemmArgs args = gemm_args(rows, cols, depth, a_packed, a_scales, a_format,
                                                b_packed, b_scales, b_format, bias, out, out_dtype);
        on_device(device, [&] {
          std::string why;
          cublasLtHandle_t lt = nullptr;
          if (cuda::mx_gemm_auto_route(args, &why) != cuda::MxGemmRoute::kFused) {
            lt = lt_handle(device, &why);
            if (lt == nullptr) return why;
          }
          return cuda::mx_gemm_auto(args, device_pointer(workspace), workspace_bytes, lt,
                                    stream_handle(stream));
        });
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("a_packed"), py::arg("a_scales"),
      py::arg("a_format"), py::arg("b_packed"), py::arg("b_scales"), py::arg("b_format"),
      py::arg("bias"), py::arg("out"), py::arg("out_dtype"), py::arg("workspace"),
      py::arg("workspace_bytes"), py::arg("stream"), py::arg("device"),
      "D [m, n] = A [m, k] * B [n, k]^T (+ bias) from MX storage, by the device's route "
      "(mx_gemm_route.h), with a workspace of _cuda_mx_gemm_route's bytes.");
  m.def(
      "_cuda_mx_gemm_weight_only",
      [](int64_t rows, int64_t cols, int64_t depth, uintptr_t x, uintptr_t codes, uintptr_t scales,
         const std::string& format, uintptr_t bias, uintptr_t out, const py::str& out_dtype,
         uintptr_t stream, int device) {
        cuda::MxWeightOnlyArgs args;
        args.m = rows;
        args.n = cols;
        args.k = depth;
        args.x = device_pointer<const void>(x);
        args.codes = device_pointer<const uint8_t>(codes);
        args.scales = device_pointer<const uint8_t>(scales);
        args.format = format_named(format);
        args.bias = device_pointer<const float>(bias);
        args.out_dtype = dtype_argument(out_dtype, "out_dtype");
        args.d = device_pointer(out);
        on_device(device,
                  [&] { return cuda::mx_gemm_weight_only_cuda(args, stream_handle(stream)); });
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("x"), py::arg("codes"), py::arg("scales"),
      py::arg("format"), py::arg("bias"), py::arg("out"), py::arg("out_dtype"), py::arg("stream"),
      py::arg("device"),
      "D [m, n] = X [m, k] * W^T (+ bias), X bfloat16, W in weight tiles, m <= 64, on a Hopper "
      "GPU (mx_gemm.h).");
}

}  // namespace mx::python

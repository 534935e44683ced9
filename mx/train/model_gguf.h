// A model mxkit loads (nn/model_file.h) written as a GGUF file that llama.cpp runs: the layout
// and hyperparameters of nn/gguf_model.h, the vocabulary of data/gguf_tokenizer.h. This is what
// `mx quantize MODEL -o M.gguf` and `mx export MODEL -o M.gguf` write.
//
// With `quantize`, the tensors the selection rules choose (convert/tensor_selection.h, applied
// to mxkit's parameter names) become MXFP4 where their rows are whole blocks of 32. Other
// matrices and the embeddings are written as `float_type` (F32, F16 or BF16); vectors (norms,
// biases) stay F32, as llama.cpp's own converter keeps them. The file is written atomically.
#pragma once

#include <map>

#include <string>

#include "mx/convert/convert_report.h"
#include "mx/convert/tensor_selection.h"
#include "mx/core/dtype.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/model_file.h"

namespace mx::train {

struct ModelGgufOptions {
  bool quantize = true;
  QuantSpec spec;  // must pass convert::check_gguf_spec when quantizing
  cpu::Options cpu;
  convert::SelectionRules selection;
  DType float_type = DType::kF32;
  std::string tokenizer;  // "": the one the model names
  // Weights quantized already (by parameter name, e.g. by PTQ), written as their blocks are:
  // a tensor whose parameters are all here is stored MXFP4 from them (its `quantize` and
  // `spec` unused), one whose parameters are not is kept as floats. Null: quantize as above.
  const std::map<std::string, MxTensor>* stored = nullptr;
};

// `loaded` came from `model_path` (named in messages). Errors name the problem in one line: a
// model that names no tokenizer, or one that llama.cpp has no counterpart for (the byte
// vocabulary).
std::string write_model_gguf(const nn::LoadedModel& loaded, const std::string& model_path,
                             const std::string& out_path, const ModelGgufOptions& options,
                             const convert::ProgressCallback& progress,
                             convert::ConvertReport* report);

}  // namespace mx::train

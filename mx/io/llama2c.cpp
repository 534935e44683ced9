#include "mx/io/llama2c.h"

#include <cstring>
#include <map>
#include <type_traits>

#include "mx/io/safetensors.h"

#include "mx/io/cat.h"

namespace mx::io {
namespace {

constexpr uint64_t kHeaderBytes = 7 * 4;

struct Layout {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<Layout> layout_of(const Llama2cConfig& c) {
  const int64_t L = c.n_layers, d = c.dim, h = c.hidden_dim, kv = c.kv_dim();
  std::vector<Layout> v = {
      {"token_embedding", {c.vocab_size, d}},
      {"rms_att", {L, d}},
      {"wq", {L, d, d}},
      {"wk", {L, kv, d}},
      {"wv", {L, kv, d}},
      {"wo", {L, d, d}},
      {"rms_ffn", {L, d}},
      {"w1", {L, h, d}},
      {"w2", {L, d, h}},
      {"w3", {L, h, d}},
      {"rms_final", {d}},
      {"freq_cis_real", {c.seq_len, c.head_size() / 2}},
      {"freq_cis_imag", {c.seq_len, c.head_size() / 2}},
  };
  if (!c.shared_classifier) v.push_back({"wcls", {c.vocab_size, d}});
  return v;
}

// Float count of a shape, or false on overflow (dimensions are positive here).
bool count_of(const std::vector<int64_t>& shape, uint64_t* n) {
  uint64_t c = 1;
  for (const int64_t d : shape) {
    if (__builtin_mul_overflow(c, static_cast<uint64_t>(d), &c)) return false;
  }
  *n = c;
  return true;
}

// Total bytes of the file the config implies, or false on overflow.
bool implied_bytes(const Llama2cConfig& c, uint64_t* total) {
  uint64_t t = kHeaderBytes;
  for (const auto& l : layout_of(c)) {
    uint64_t n = 0, bytes = 0;
    if (!count_of(l.shape, &n) || __builtin_mul_overflow(n, uint64_t{4}, &bytes) ||
        __builtin_add_overflow(t, bytes, &t)) {
      return false;
    }
  }
  if (t > static_cast<uint64_t>(INT64_MAX)) return false;
  *total = t;
  return true;
}

}  // namespace

std::string validate(const Llama2cConfig& c) {
  const std::pair<const char*, int32_t> fields[] = {
      {"dim", c.dim},         {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
      {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
      {"seq_len", c.seq_len}};
  for (const auto& [name, value] : fields) {
    if (value <= 0) return cat("llama2.c header: ", name, " = ", value, " is not positive");
  }
  if (c.dim % c.n_heads != 0) {
    return cat("llama2.c header: dim ", c.dim, " is not a multiple of n_heads ", c.n_heads);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return cat("llama2.c header: n_heads ", c.n_heads, " is not a multiple of n_kv_heads ",
               c.n_kv_heads);
  }
  if (c.head_size() % 2 != 0) {
    return cat("llama2.c header: head size ", c.head_size(), " (dim / n_heads) is odd");
  }
  uint64_t total = 0;
  if (!implied_bytes(c, &total)) return "llama2.c header: the implied file size overflows";
  return "";
}

const Llama2cTensor* Llama2cCheckpoint::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

// Lays out the arrays of `file` into `config` and `tensors`; errors name no path.
std::string parse_into(std::span<const uint8_t> file, Llama2cConfig* config,
                       std::vector<Llama2cTensor>* tensors) {
  if (file.size() < kHeaderBytes) {
    return cat("file of ", file.size(), " bytes is shorter than the 28-byte header");
  }
  int32_t h[7];
  std::memcpy(h, file.data(), sizeof h);
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  if (h[5] == INT32_MIN) return cat("llama2.c header: vocab_size ", h[5], " is invalid");
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.seq_len = h[6];
  if (h[5] == 0) return "llama2.c header: vocab_size = 0 is not positive";
  if (auto e = validate(c); !e.empty()) return e;
  uint64_t offset = kHeaderBytes;
  for (auto& l : layout_of(c)) {
    uint64_t n = 0;
    count_of(l.shape, &n);  // cannot overflow: validate checked the total
    const uint64_t end = offset + n * 4;
    if (end > file.size()) {
      return cat(
          "file of ", file.size(), " bytes is truncated: '", l.name, "' needs bytes ", offset, "..",
          end, " (the header implies ",
          [&] {
            uint64_t t = 0;
            implied_bytes(c, &t);
            return t;
          }(),
          " bytes)");
    }
    Llama2cTensor t;
    t.name = std::move(l.name);
    t.shape = std::move(l.shape);
    t.data = std::span<const float>(reinterpret_cast<const float*>(file.data() + offset),
                                    static_cast<size_t>(n));
    t.file_offset = offset;
    tensors->push_back(std::move(t));
    offset = end;
  }
  // The header is all there is to say where the arrays lie: bytes beyond them mean a header
  // that was damaged (vocab 10 read as -1, say, shifts every array after the embedding).
  if (offset != file.size()) {
    return cat("file of ", file.size(), " bytes is longer than the ", offset,
               " its header implies (a damaged header?)");
  }
  *config = c;
  return "";
}

}  // namespace

std::string parse_llama2c(std::span<const uint8_t> file, Llama2cCheckpoint* out) {
  out->tensors_.clear();
  out->config_ = {};
  out->mapping_.close();
  Llama2cConfig c;
  std::vector<Llama2cTensor> tensors;
  if (auto e = parse_into(file, &c, &tensors); !e.empty()) return e;
  out->config_ = c;
  out->tensors_ = std::move(tensors);
  return "";
}

std::string read_llama2c(const std::string& path, Llama2cCheckpoint* out) {
  out->tensors_.clear();
  out->config_ = {};
  out->mapping_.close();
  MappedFile map;
  if (auto e = map.open(path); !e.empty()) return e;
  Llama2cConfig c;
  std::vector<Llama2cTensor> tensors;
  if (auto e = parse_into(map.bytes(), &c, &tensors); !e.empty()) return cat(path, ": ", e);
  out->mapping_ = std::move(map);  // the spans stay valid: the mapping itself does not move
  out->config_ = c;
  out->tensors_ = std::move(tensors);
  return "";
}

std::string llama2c_named_tensors(const Llama2cCheckpoint& ckpt, std::vector<TensorToWrite>* out,
                                  std::map<std::string, std::string>* metadata) {
  out->clear();
  metadata->clear();
  const Llama2cConfig& c = ckpt.config();
  if (ckpt.tensors().empty()) return "llama2.c checkpoint is empty (not read)";
  std::vector<TensorToWrite>& list = *out;
  auto as_bytes = [](std::span<const float> f) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f.data()), f.size() * 4);
  };
  auto whole = [&](const char* from, std::string to) {
    const Llama2cTensor* t = ckpt.find(from);
    list.push_back({std::move(to), "F32", t->shape, as_bytes(t->data)});
  };
  // Layer i's slice of a stacked [L, ...] array.
  auto layer = [&](const char* from, int64_t i, std::string to) {
    const Llama2cTensor* t = ckpt.find(from);
    const size_t per = t->data.size() / static_cast<size_t>(c.n_layers);
    std::vector<int64_t> shape(t->shape.begin() + 1, t->shape.end());
    list.push_back({std::move(to), "F32", std::move(shape),
                    as_bytes(t->data.subspan(static_cast<size_t>(i) * per, per))});
  };
  whole("token_embedding", "model.embed_tokens.weight");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    std::string p = "model.layers.";
    p += std::to_string(i);
    p += ".";
    layer("rms_att", i, p + "input_layernorm.weight");
    layer("wq", i, p + "self_attn.q_proj.weight");
    layer("wk", i, p + "self_attn.k_proj.weight");
    layer("wv", i, p + "self_attn.v_proj.weight");
    layer("wo", i, p + "self_attn.o_proj.weight");
    layer("rms_ffn", i, p + "post_attention_layernorm.weight");
    layer("w1", i, p + "mlp.gate_proj.weight");
    layer("w2", i, p + "mlp.down_proj.weight");
    layer("w3", i, p + "mlp.up_proj.weight");
  }
  whole("rms_final", "model.norm.weight");
  if (!c.shared_classifier) whole("wcls", "lm_head.weight");
  *metadata = {
      {"format", "pt"},
      {"llama2c.rope", "interleaved"},
      {"llama2c.dim", std::to_string(c.dim)},
      {"llama2c.hidden_dim", std::to_string(c.hidden_dim)},
      {"llama2c.n_layers", std::to_string(c.n_layers)},
      {"llama2c.n_heads", std::to_string(c.n_heads)},
      {"llama2c.n_kv_heads", std::to_string(c.n_kv_heads)},
      {"llama2c.vocab_size", std::to_string(c.vocab_size)},
      {"llama2c.seq_len", std::to_string(c.seq_len)},
      {"llama2c.shared_classifier", c.shared_classifier ? "true" : "false"},
  };
  return "";
}

std::string llama2c_to_safetensors(const Llama2cCheckpoint& ckpt, const std::string& path) {
  std::vector<TensorToWrite> list;
  std::map<std::string, std::string> meta;
  if (std::string e = llama2c_named_tensors(ckpt, &list, &meta); !e.empty()) return e;
  return write_safetensors(path, list, meta);
}

}  // namespace mx::io

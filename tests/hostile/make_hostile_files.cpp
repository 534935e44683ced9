// Writes hostile variants of the fuzz seeds (fuzz/make_seeds.cpp) for tests/cli/hostile_test.sh:
// model files and checkpoints whose config fields are pushed to the edges of int64 and beyond
// (sealed with a matching checksum, as a hostile writer could), llama2.c headers with extreme
// sizes, cuts and bit flips, a safetensors header with junk after a NUL, and a GGUF file that is
// mostly one large array.
//
//   mx_hostile_files SEEDS OUT
//
// writes OUT/models/*.safetensors, OUT/runs/*/checkpoint.safetensors, OUT/llama2c/*.bin,
// OUT/cuts/*, OUT/files/*.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mx/io/content_checksum.h"
#include "mx/io/gguf.h"
#include "mx/io/safetensors.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using nlohmann::json;

namespace {

void check(const std::string& e, const std::string& what) {
  if (!e.empty()) {
    std::fprintf(stderr, "mx_hostile_files: %s: %s\n", what.c_str(), e.c_str());
    std::exit(1);
  }
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) check("cannot read", p.string());
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& p, const Bytes& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Numbers at and past the edges of what a config field can hold, as JSON text: zero, negative,
// past our limits, past 31 and 63 bits, and past 64 bits (no integer type holds it). Every one is
// invalid for every field below (the smallest, 2^24 + 1, is past each field's limit), so every file
// made with one must be refused.
const std::vector<std::string> kExtremes = {"0",
                                            "-1",
                                            "16777217",
                                            "2147483648",
                                            "1000000000000",
                                            "9223372036854775807",
                                            "18446744073709551616"};

// JSON text with field `key` of the object (nested at `path`, an object key or "") set to
// `value`, given as JSON text.
std::string with_field(const std::string& text, const std::string& path, const std::string& key,
                       const std::string& value) {
  json j = json::parse(text);
  json& target = path.empty() ? j : j[path];
  // A number past 64 bits parses as a double; kept as text, it stays an integer literal.
  target[key] = json::parse(value, nullptr, false);
  std::string out = j.dump();
  if (value == "18446744073709551616") {
    const std::string as_double = target[key].dump();
    const size_t at = out.find(as_double);
    if (at != std::string::npos) out.replace(at, as_double.size(), value);
  }
  return out;
}

// The seed at `seed` with metadata entries replaced, sealed with a checksum that matches again.
Bytes rewritten(const fs::path& seed, const std::map<std::string, std::string>& edits) {
  mx::io::SafetensorsFile file;
  check(mx::io::open_safetensors(seed.string(), &file), seed.string());
  std::vector<mx::io::TensorToWrite> tensors;
  for (const auto& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  std::map<std::string, std::string> meta = file.metadata();
  for (const auto& [k, v] : edits) meta[k] = v;
  mx::io::add_checksum(tensors, &meta);
  Bytes out;
  check(mx::io::encode_safetensors(tensors, meta, &out), "encode");
  return out;
}

const char* const kModelFields[] = {"vocab",      "dim",    "n_layers", "n_heads",
                                    "n_kv_heads", "hidden", "seq_len"};

void model_files(const fs::path& seeds, const fs::path& out) {
  for (const char* arch : {"gpt2", "llama"}) {
    const fs::path seed = seeds / "model_file" / (std::string(arch) + ".safetensors");
    mx::io::SafetensorsFile file;
    check(mx::io::open_safetensors(seed.string(), &file), seed.string());
    const std::string config = file.metadata().at("mxkit.model");
    for (const char* field : kModelFields) {
      for (const std::string& v : kExtremes) {
        write_file(out / "models" / (std::string(arch) + "_" + field + "_" + v + ".safetensors"),
                   rewritten(seed, {{"mxkit.model", with_field(config, "", field, v)}}));
      }
    }
    write_file(out / "models" / (std::string(arch) + "_arch_string.safetensors"),
               rewritten(seed, {{"mxkit.model", with_field(config, "", "arch", "\"gpt3\"")}}));
  }
}

void checkpoints(const fs::path& seeds, const fs::path& out) {
  const fs::path seed = seeds / "checkpoint" / "checkpoint.safetensors";
  mx::io::SafetensorsFile file;
  check(mx::io::open_safetensors(seed.string(), &file), seed.string());
  const std::string model = file.metadata().at("mxkit.model");
  const std::string train = file.metadata().at("mxkit.train");
  const std::string state = file.metadata().at("mxkit.state");
  auto run = [&](const std::string& name, const std::map<std::string, std::string>& edits) {
    write_file(out / "runs" / name / "checkpoint.safetensors", rewritten(seed, edits));
  };
  for (const char* field : kModelFields) {
    for (const std::string& v : kExtremes) {
      // The model config appears twice; a consistent edit reaches the size checks.
      run(std::string("model_") + field + "_" + v,
          {{"mxkit.model", with_field(model, "", field, v)},
           {"mxkit.train", with_field(train, "model_config", field, v)}});
    }
  }
  for (const char* field :
       {"steps", "batch", "seq_len", "warmup", "eval_every", "checkpoint_every", "eval_batches"}) {
    for (const std::string& v : kExtremes) {
      run(std::string("train_") + field + "_" + v,
          {{"mxkit.train", with_field(train, "", field, v)}});
    }
  }
  for (const char* field : {"step", "adam_steps", "sampler_draws"}) {
    for (const std::string& v : kExtremes) {
      run(std::string("state_") + field + "_" + v,
          {{"mxkit.state", with_field(state, "", field, v)}});
    }
  }
  // Damage without a new checksum: every reader must notice.
  Bytes flipped = read_file(seed);
  flipped[flipped.size() - 7] ^= 0x10;
  write_file(out / "runs" / "bit_flip" / "checkpoint.safetensors", flipped);
}

void llama2c_files(const fs::path& seeds, const fs::path& out) {
  const Bytes seed = read_file(seeds / "llama2c" / "shared.bin");
  const char* const names[] = {"dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq"};
  const int32_t extremes[] = {0, -1, 1000000000, INT32_MAX, INT32_MIN};
  for (int field = 0; field < 7; ++field) {
    for (const int32_t v : extremes) {
      Bytes b = seed;
      std::memcpy(b.data() + 4 * field, &v, 4);
      write_file(out / "llama2c" / (std::string(names[field]) + "_" + std::to_string(v) + ".bin"),
                 b);
    }
  }
}

void cuts_and_flips(const fs::path& seeds, const fs::path& out) {
  const Bytes model = read_file(seeds / "model_file" / "llama_checksum.safetensors");
  for (const size_t cut :
       {size_t{0}, size_t{5}, size_t{8}, size_t{40}, model.size() / 2, model.size() - 1}) {
    write_file(out / "cuts" / ("cut_" + std::to_string(cut) + ".safetensors"),
               Bytes(model.begin(), model.begin() + static_cast<long>(cut)));
  }
  Bytes flipped = model;
  flipped[flipped.size() - 3] ^= 0x40;
  write_file(out / "cuts" / "bit_flip.safetensors", flipped);
  const Bytes llama2c = read_file(seeds / "llama2c" / "shared.bin");
  write_file(out / "cuts" / "cut_header.bin", Bytes(llama2c.begin(), llama2c.begin() + 20));
  write_file(out / "cuts" / "cut_body.bin", Bytes(llama2c.begin(), llama2c.end() - 4));
}

void odd_files(const fs::path& out) {
  // A header that parses if reading stops at the NUL.
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})" + std::string("\0junk", 5);
  std::string file;
  for (int i = 0; i < 8; ++i) file.push_back(char(uint64_t(header.size()) >> (8 * i)));
  file += header;
  file += std::string("\x00\x00\x80\x3f", 4);  // 1.0f
  const Bytes nul(file.begin(), file.end());
  write_file(out / "files" / "nul_header.safetensors", nul);
  // 64 MB of one u8 array: 40 bytes an element once made this take 2.5 GB to inspect.
  constexpr uint64_t kCount = uint64_t{64} << 20;
  Bytes gguf;
  for (const char c : std::string_view("GGUF")) gguf.push_back(uint8_t(c));
  auto put64 = [&](uint64_t x) {
    for (int i = 0; i < 8; ++i) gguf.push_back(uint8_t(x >> (8 * i)));
  };
  auto put32 = [&](uint32_t x) {
    for (int i = 0; i < 4; ++i) gguf.push_back(uint8_t(x >> (8 * i)));
  };
  put32(3), put64(0), put64(1), put64(4);
  for (const char c : std::string_view("blob")) gguf.push_back(uint8_t(c));
  put32(9), put32(0), put64(kCount);
  gguf.resize(gguf.size() + kCount, 7);
  gguf.resize((gguf.size() + 31) / 32 * 32, 0);
  write_file(out / "files" / "big_array.gguf", gguf);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SEEDS OUT\n", argv[0]);
    return 2;
  }
  const fs::path seeds = argv[1], out = argv[2];
  model_files(seeds, out);
  checkpoints(seeds, out);
  llama2c_files(seeds, out);
  cuts_and_flips(seeds, out);
  odd_files(out);
  return 0;
}

#pragma once
// Helpers of the export tests: qshard checkpoints of random quantized weights written in-process
// (any bits, sym/asym, act_order g_idx, biases, modules kept in floating point), temporary
// directories, and a bit-by-bit reader of packed GPTQ words independent of qshard's unpacking.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard::test {

namespace fs = std::filesystem;

// A fresh directory under the system temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "qshard-export-XXXXXX").string();
    const char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw Error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct CheckpointSpec {
  int bits = 4;
  std::int64_t group_size = 32;
  bool sym = false;
  bool act_order = false;
  bool zero_can_be_0 = false;  // asym zeros drawn from [0, maxq] instead of [1, maxq]
  std::int64_t intermediate = 96;
  bool bias = true;                // q/k/v/o biases (attention_bias)
  std::set<Linear> float_modules;  // stored with method "none"
  DType dtype = DType::F32;
  std::uint64_t seed = 1;
  std::vector<std::string> drop_job_keys;  // left out of @job_config
};

// hidden 64, 4 heads of 16 over 2 kv heads (q 64, k/v 32), 2 layers, vocab 64, untied head.
inline ModelConfig spec_config(const CheckpointSpec& s) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 64;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 64;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  c.attention_bias = s.bias;
  c.o_proj_bias = s.bias;
  c.torch_dtype = s.dtype;
  return c;
}

// Values representable in `dtype` (what a checkpoint of that dtype holds).
inline MatrixF random_matrix(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols,
                             double scale, double offset, DType dtype) {
  std::normal_distribution<double> normal;
  MatrixF m(rows, cols);
  for (float& v : m.values()) v = static_cast<float>(offset + scale * normal(rng));
  std::vector<std::uint16_t> bits(m.size());
  if (dtype != DType::F32) {
    convert_from_f32(m.data(), m.size(), dtype, bits.data());
    convert_to_f32(bits.data(), dtype, m.size(), m.data());
  }
  return m;
}

inline QuantizedWeight random_quantized(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols,
                                        const CheckpointSpec& s) {
  QuantizedWeight w;
  w.bits = s.bits;
  w.group_size = s.group_size;
  const std::int32_t maxq = (1 << s.bits) - 1;
  const std::int64_t groups = group_count(cols, s.group_size);
  const std::int64_t size = s.group_size > 0 ? s.group_size : cols;
  std::uniform_int_distribution<int> code(0, maxq);
  std::uniform_int_distribution<int> zero(s.zero_can_be_0 ? 0 : 1, maxq);
  std::uniform_real_distribution<float> scale(1e-3f, 0.1f);
  w.codes = Matrix<std::uint8_t>(rows, cols);
  for (std::uint8_t& c : w.codes.values()) c = static_cast<std::uint8_t>(code(rng));
  w.scales = MatrixF(rows, groups);
  for (float& v : w.scales.values()) v = round_to_f16(scale(rng));
  w.zeros = Matrix<std::int32_t>(rows, groups);
  for (std::int32_t& z : w.zeros.values()) z = s.sym ? (maxq + 1) / 2 : zero(rng);
  std::vector<std::int64_t> order(static_cast<std::size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  if (s.act_order) std::shuffle(order.begin(), order.end(), rng);
  w.g_idx.assign(static_cast<std::size_t>(cols), 0);
  for (std::int64_t k = 0; k < cols; ++k)
    w.g_idx[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] =
        static_cast<std::int32_t>(k / size);
  return w;
}

// Writes a checkpoint as qshard-quantize does (attributes the readers need, one group per layer).
inline void write_random_checkpoint(const fs::path& path, const CheckpointSpec& s) {
  const ModelConfig c = spec_config(s);
  std::mt19937_64 rng(s.seed);
  const fs::path parts = path.string() + ".parts";
  fs::create_directories(parts);
  {
    CheckpointWriter writer(path);
    const h5::Group root = writer.root();
    root.set_attr("format", std::string(kCheckpointFormat));
    root.set_attr("format_version", kCheckpointFormatVersion);
    root.set_attr("model_config", to_json(c));
    root.set_attr("layers", c.num_hidden_layers);
    nlohmann::json job = {{"bits", s.bits},
                          {"group_size", s.group_size},
                          {"sym", s.sym},
                          {"act_order", s.act_order},
                          {"static_groups", false},
                          {"damp_percent", 0.01},
                          {"true_sequential", true},
                          {"method", "gptq"},
                          {"model", "synthetic:export-test"},
                          {"model_seed", 0}};
    for (const std::string& key : s.drop_job_keys) job.erase(key);
    root.set_attr("job_config", job.dump(2));
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      LayerRecord layer;
      layer.index = l;
      layer.input_norm = random_matrix(rng, 1, c.hidden_size, 0.1, 1.0, s.dtype);
      layer.post_norm = random_matrix(rng, 1, c.hidden_size, 0.1, 1.0, s.dtype);
      for (const Linear linear : kAllLinears) {
        const auto [rows, cols] = linear_shape(c, linear);
        ModuleRecord m;
        m.module = linear;
        if (s.float_modules.contains(linear)) {
          m.method = "none";
          m.float_weight = random_matrix(rng, rows, cols, 0.05, 0.0, s.dtype);
        } else {
          m.weight = random_quantized(rng, rows, cols, s);
        }
        const bool has_bias = linear_parent(linear) == "self_attn" && s.bias;
        if (has_bias) m.bias = random_matrix(rng, 1, rows, 0.02, 0.0, DType::F32).values();
        layer.modules.push_back(std::move(m));
      }
      const fs::path file = parts / str("layer-", l, ".h5");
      write_layer_file(file, c, layer, s.dtype);
      writer.add_layer_file(file, l);
    }
    writer.write_model_tensor(std::string(kEmbedName),
                              random_matrix(rng, c.vocab_size, c.hidden_size, 1.0, 0.0, s.dtype),
                              s.dtype);
    writer.write_model_tensor(std::string(kFinalNormName),
                              random_matrix(rng, 1, c.hidden_size, 0.1, 1.0, s.dtype), s.dtype);
    writer.write_model_tensor(std::string(kLmHeadName),
                              random_matrix(rng, c.vocab_size, c.hidden_size, 0.3, 0.0, s.dtype),
                              s.dtype);
    writer.commit();
  }
  fs::remove_all(parts);
}

// Little-endian 32-bit word `index` of raw tensor bytes.
inline std::uint32_t word_at(std::span<const std::byte> bytes, std::size_t index) {
  std::uint32_t w = 0;
  for (std::size_t i = 0; i < 4; ++i)
    w |= static_cast<std::uint32_t>(std::to_integer<unsigned>(bytes[4 * index + i])) << (8 * i);
  return w;
}

// Value `k` of a b-bit stream packed down the rows of column `column` of an int32 matrix
// [words, columns]: stream bit p is bit p % 32 of the word at row p / 32. Read one bit at a time.
inline std::uint32_t stream_value(std::span<const std::byte> bytes, std::int64_t columns,
                                  std::int64_t column, std::int64_t k, int bits) {
  std::uint32_t value = 0;
  for (int j = 0; j < bits; ++j) {
    const std::int64_t p = k * bits + j;
    const std::uint32_t word =
        word_at(bytes, static_cast<std::size_t>((p / 32) * columns + column));
    value |= ((word >> (p % 32)) & 1u) << j;
  }
  return value;
}

// Value `k` of the b-bit stream packed along row `row` of an int32 matrix [rows, words].
inline std::uint32_t row_stream_value(std::span<const std::byte> bytes, std::int64_t words,
                                      std::int64_t row, std::int64_t k, int bits) {
  std::uint32_t value = 0;
  for (int j = 0; j < bits; ++j) {
    const std::int64_t p = k * bits + j;
    const std::uint32_t word = word_at(bytes, static_cast<std::size_t>(row * words + p / 32));
    value |= ((word >> (p % 32)) & 1u) << j;
  }
  return value;
}

}  // namespace qshard::test

namespace qshard::test {

// Runs `action`, which must throw qshard::Error with every one of `parts` in its message.
template <typename Action>
void expect_error_with(Action&& action, std::initializer_list<std::string_view> parts) {
  try {
    action();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string_view part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "message lacks '" << part << "': " << message;
  }
}

}  // namespace qshard::test

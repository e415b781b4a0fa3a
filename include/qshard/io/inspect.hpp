#pragma once
// The printing behind qshard-inspect: one function per kind of input, all writing to a stream.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "qshard/core/tensor.hpp"
#include "qshard/io/gptq_config.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {

// One line of the tensor table.
struct TensorRow {
  std::string name;
  Shape shape;
  DType dtype = DType::F32;
  std::string file;  // the file (or group) holding it, as it should be shown
};

// The parsed config, one "key: value" line per field.
void print_config(std::ostream& out, const ModelConfig& config);
// An aligned table of the rows (name, shape, dtype, file) followed by the totals: tensor count,
// parameter count and bytes.
void print_tensor_table(std::ostream& out, const std::vector<TensorRow>& rows);
// The totals of print_tensor_table, then per dtype (tensors, bytes), the file count and
// `stored_layers`: what a model holds in a few lines, whatever its size.
void print_tensor_summary(std::ostream& out, const std::vector<TensorRow>& rows,
                          std::int64_t stored_layers);
// The names the config implies (embeddings, norms, every linear and its biases, lm_head unless
// tied), in layer order.
std::vector<std::string> expected_tensor_names(const ModelConfig& config);

// The ".weight" name a packed GPTQ tensor stands for ("...q_proj.qweight" -> "...q_proj.weight"),
// or an empty string for other names.
std::string packed_weight_name(const std::string& name);
// The GPTQ config of a directory and, per linear module, how it is stored (packed with its
// qweight/qzeros/scales shapes, or floating point) and whether the config agrees.
void print_gptq_summary(std::ostream& out, const GptqConfig& gptq, const SafetensorsModel& model,
                        const ModelConfig& config);

// `qshard-inspect --model DIR`: config.json, a summary of the safetensors files' tensors (all
// shards opened and cross-checked; with `list_tensors` every tensor and the totals), and the
// tensors the config expects but the files lack or the files hold but no LLaMA-family name matches;
// for a GPTQ directory also the quantization config and the packing of every module. Throws
// qshard::Error on a broken model.
void inspect_model(const std::filesystem::path& directory, std::ostream& out,
                   bool list_tensors = false);

}  // namespace qshard

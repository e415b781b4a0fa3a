#pragma once
// qshard-export: a qshard HDF5 checkpoint as a Hugging Face model directory, either in the GPTQ
// safetensors format that serving engines load or dense with dequantized weights
// (docs/FORMATS.md).
#include <cstdint>
#include <ostream>
#include <string>

#include "qshard/io/gptq_config.hpp"

namespace qshard {

enum class ExportFormat : std::uint8_t { Gptq, Float };

struct ExportOptions {
  std::string checkpoint;  // qshard HDF5 checkpoint
  std::string out;         // output directory
  std::string model;       // optional source model directory: config.json fields, tokenizer
  ExportFormat format = ExportFormat::Gptq;
  std::uint64_t max_shard_bytes = 2000000000;  // "2GB"
  GptqZeroFormat zero_format = GptqZeroFormat::V1;
  bool force = false;  // replace a non-empty output directory
};

ExportFormat parse_export_format(const std::string& name);  // "gptq" or "float"

struct ExportSummary {
  std::int64_t tensors = 0;
  std::int64_t shards = 0;
  std::uint64_t bytes = 0;
  std::int64_t quantized_modules = 0;
  std::int64_t float_modules = 0;  // linear modules written in floating point
};

// Streams the checkpoint layer by layer into OUT.tmp and renames it to OUT when complete; prints
// progress, and every module kept in floating point with the reason, to `log`.
ExportSummary run_export(const ExportOptions& options, std::ostream& log);

}  // namespace qshard

#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "qshard/core/fnv1a.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/job_record.hpp"

namespace qshard {
namespace {

std::string bytes_text(double bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  if (bytes < 1024.0 * 1024.0)
    out << bytes / 1024.0 << " KiB";
  else if (bytes < 1024.0 * 1024.0 * 1024.0)
    out << bytes / (1024.0 * 1024.0) << " MiB";
  else
    out << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

// Bytes of a module as stored: packed codes, packed zeros, fp16 scales, int32 g_idx.
double stored_bytes(const QuantizedWeight& w) {
  const double words_per_column = std::ceil(static_cast<double>(w.cols() * w.bits) / 32.0);
  const double zero_words = std::ceil(static_cast<double>(w.rows() * w.bits) / 32.0);
  return 4.0 * words_per_column * static_cast<double>(w.rows()) +
         4.0 * zero_words * static_cast<double>(w.groups()) +
         2.0 * static_cast<double>(w.groups() * w.rows()) + 4.0 * static_cast<double>(w.cols());
}

}  // namespace

void print_checkpoint_summary(const Checkpoint& checkpoint, std::ostream& out) {
  const JobRecord job = JobRecord::read(checkpoint);
  out << "checkpoint " << checkpoint.path().string() << '\n';
  const auto line = [&](const char* key, const auto& value) {
    out << "  " << std::left << std::setw(22) << key << value << '\n';
  };
  const auto text = [&](const char* key, const std::string& value) {
    if (!value.empty()) line(key, value);
  };
  const auto content_hash = checkpoint.content_hash();
  line("format_version", checkpoint.format_version());
  if (content_hash) line("content_hash", hex64(*content_hash));
  text("qshard_version", job.qshard_version);
  text("git_commit", job.git_commit);
  text("model_source", job.model_source);
  text("backend", job.backend);
  text("calibration_hash", job.calibration_hash);
  text("created_utc", job.created_utc);
  text("command_line", job.command_line);
  if (job.ranks > 0) line("ranks", job.ranks);
  if (job.calibration_samples > 0) {
    line("calibration_seed", job.calibration_seed);
    line("calibration_samples", job.calibration_samples);
    line("calibration_seq_len", job.calibration_seq_len);
  }
  line("layers", checkpoint.layer_count());
  if (!job.layer_block_starts.empty()) {  // --layer_groups: "0-14 15-29"
    std::ostringstream blocks;
    const std::vector<std::int64_t>& starts = job.layer_block_starts;
    for (std::size_t g = 0; g < starts.size(); ++g)
      blocks << (g ? " " : "") << starts[g] << "-"
             << (g + 1 < starts.size() ? starts[g + 1] : checkpoint.layer_count()) - 1;
    line("layer_blocks", blocks.str());
  }
  if (job.seconds > 0) line("seconds", job.seconds);

  std::map<std::string, std::int64_t> settings;  // "4-bit g32 gptq" -> modules
  double quantized_weights = 0.0, quantized_bytes = 0.0, float_bytes = 0.0;
  out << "\n  layer  gptq objective    rtn objective   ratio   seconds\n";
  for (std::int64_t l = 0; l < checkpoint.layer_count(); ++l) {
    const LayerRecord layer = checkpoint.layer(l);
    double gptq = 0.0, rtn = 0.0;
    for (const ModuleRecord& m : layer.modules) {
      if (m.method == "none") {
        float_bytes += 4.0 * static_cast<double>(m.float_weight.size());
        continue;
      }
      gptq += m.objective_gptq;
      rtn += m.objective_rtn;
      settings[std::to_string(m.weight.bits) + "-bit group " + std::to_string(m.weight.group_size) +
               " " + m.method] += 1;
      quantized_weights += static_cast<double>(m.weight.rows() * m.weight.cols());
      quantized_bytes += stored_bytes(m.weight);
    }
    out << "  " << std::right << std::setw(5) << l << std::scientific << std::setprecision(4)
        << std::setw(16) << gptq << std::setw(16) << rtn << std::fixed << std::setprecision(3)
        << std::setw(8) << (rtn > 0 ? gptq / rtn : 1.0) << std::setw(10) << std::setprecision(2)
        << layer.seconds << '\n';
  }
  out << "\n  modules:";
  for (const auto& [text, count] : settings) out << "  " << count << " x " << text;
  out << "\n  quantized weights " << static_cast<std::int64_t>(quantized_weights) << " in "
      << bytes_text(quantized_bytes) << " (" << std::setprecision(3)
      << (quantized_weights > 0 ? 8.0 * quantized_bytes / quantized_weights : 0.0)
      << " bits per weight with scales, zeros and g_idx)";
  if (float_bytes > 0) out << "; modules kept in floating point: " << bytes_text(float_bytes);
  out << '\n';
}

}  // namespace qshard

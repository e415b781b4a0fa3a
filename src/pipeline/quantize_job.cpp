#include "qshard/pipeline/quantize_job.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "qshard/core/error.hpp"
#include "qshard/core/file_lock.hpp"
#include "qshard/core/fnv1a.hpp"
#include "qshard/core/scoped_timer.hpp"
#include "qshard/core/serial_worker.hpp"
#include "qshard/core/text_file.hpp"
#include "qshard/core/watchdog.hpp"
#include "qshard/dist/watched_communicator.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/job_record.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/calibration.hpp"
#include "qshard/pipeline/layer_quantizer.hpp"
#include "qshard/version.hpp"

namespace qshard {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

fs::path parts_dir(const JobOptions& o) {
  return o.parts_dir.empty() ? fs::path(o.out + ".parts") : fs::path(o.parts_dir);
}
fs::path layer_file(const JobOptions& o, std::int64_t layer) {
  char name[32];
  std::snprintf(name, sizeof name, "layer-%05lld.h5", static_cast<long long>(layer));
  return parts_dir(o) / name;
}
fs::path state_file(const JobOptions& o) { return parts_dir(o) / "job.json"; }
fs::path lock_file(const JobOptions& o) { return parts_dir(o) / "lock"; }

// Locks the job's parts directory (rank 0): a second job on the same output is refused.
FileLock lock_parts(const JobOptions& o) {
  std::optional<FileLock> lock = FileLock::try_lock(lock_file(o));
  require(lock.has_value(), "another qshard-quantize job is running on ", parts_dir(o),
          " (its lock is held); wait for it or choose another --out");
  return std::move(*lock);
}

// The model's files: every regular file of its directory (sorted), or the file itself (a
// checkpoint or a config.json); none for synthetic models.
std::vector<fs::path> model_files(const JobOptions& o) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(o.model, ec)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(o.model, ec))
      if (entry.is_regular_file()) files.push_back(entry.path());
  } else if (fs::is_regular_file(o.model, ec)) {
    files.push_back(o.model);
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The files a job reads: the calibration file and the model's files.
std::vector<fs::path> job_inputs(const JobOptions& o) {
  std::vector<fs::path> inputs = model_files(o);
  if (!o.calib.empty()) {
    fs::path calib = o.calib;
    const auto colon = o.calib.rfind(':');  // FILE.h5:DATASET
    if (!fs::exists(calib) && colon != std::string::npos) calib = o.calib.substr(0, colon);
    inputs.push_back(calib);
  }
  return inputs;
}

// --out must not replace an existing file without --force, nor ever one of the job's inputs.
void check_output_is_safe(const JobOptions& o) {
  const fs::path out = fs::weakly_canonical(fs::absolute(o.out));
  for (const fs::path& input : job_inputs(o)) {
    std::error_code ec;
    require(!fs::equivalent(out, input, ec), "--out ", o.out, " is an input of this job (",
            input.string(), "): choose another output path");
  }
  require(!fs::exists(out) || o.force, "--out ", o.out,
          " exists: give --force to replace it (the old file stays until the new checkpoint is "
          "complete)");
  require(!fs::is_directory(out), "--out ", o.out, " is a directory");
}

// FNV-1a of the first `limit` bytes of a file (for fingerprints of inputs).
std::uint64_t hash_file_prefix(const fs::path& path, std::uintmax_t limit) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), "cannot read ", path);
  Fnv1a hash;
  std::vector<char> buffer(1 << 16);
  for (std::uintmax_t left = limit; left > 0 && in;) {
    in.read(buffer.data(),
            static_cast<std::streamsize>(std::min<std::uintmax_t>(left, buffer.size())));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    hash.add(std::as_bytes(std::span(buffer.data(), n)));
    left -= n;
  }
  return hash.value();
}

// What --resume must find unchanged besides the settings: every file of the model directory
// (size, and the safetensors header or the whole small file) and the calibration tokens.
nlohmann::json input_fingerprint(const JobOptions& o, const TokenSet& calib) {
  nlohmann::json inputs;
  inputs["calibration_tokens"] = hex64(hash_tokens(calib));
  for (const fs::path& file : model_files(o)) {
    const std::uintmax_t size = fs::file_size(file);
    std::uintmax_t prefix = std::min<std::uintmax_t>(size, 1 << 20);
    if (file.extension() == ".safetensors" && size >= 8) {
      std::ifstream in(file, std::ios::binary);
      unsigned char length[8] = {};
      in.read(reinterpret_cast<char*>(length), 8);
      std::uint64_t header = 0;
      for (int i = 7; i >= 0; --i) header = (header << 8) | length[i];
      prefix = std::min<std::uintmax_t>(size, 8 + header);
    }
    inputs[file.filename().string()] = str(size, " bytes, ", hex64(hash_file_prefix(file, prefix)));
  }
  return inputs;
}

// job.json: the settings that decide the result and the inputs' fingerprint.
std::string job_state(const JobOptions& o, const TokenSet& calib) {
  nlohmann::json state;
  state["settings"] = nlohmann::json::parse(o.result_key());
  state["inputs"] = input_fingerprint(o, calib);
  return state.dump(2);
}

// Why a resumed job may not continue from `saved` (empty when it may).
std::string resume_conflict(const JobOptions& o, const TokenSet& calib, const std::string& saved) {
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(saved);
  } catch (const nlohmann::json::exception&) {
    return "it is not a job state this version writes";
  }
  if (!state.contains("settings") || state["settings"] != nlohmann::json::parse(o.result_key()))
    return "it was written by a job with other settings";
  const nlohmann::json now = input_fingerprint(o, calib);
  const nlohmann::json& then = state["inputs"];
  for (const auto& [name, value] : then.items())
    if (!now.contains(name) || now[name] != value)
      return str("input ", name, " changed since the job started (", value.get<std::string>(),
                 " then, ", now.contains(name) ? now[name].get<std::string>() : "missing", " now)");
  for (const auto& [name, value] : now.items())
    if (!then.contains(name)) return str("input ", name, " appeared since the job started");
  return "";
}

// Rank 0 prepares OUT.parts/ (fresh, or checked for --resume) and returns how many layers are
// done; the outcome (or the error) reaches every rank, so no rank is left waiting.
std::int64_t prepare_parts(const JobOptions& o, const TokenSet& calib, Communicator& comm,
                           std::int64_t layers, std::optional<FileLock>& lock) {
  std::int64_t done = 0;
  std::string error;
  if (comm.is_root()) {
    try {
      const fs::path dir = parts_dir(o);
      const fs::path parent = fs::absolute(fs::path(o.out)).parent_path();
      require(fs::is_directory(parent), "output directory ", parent, " does not exist");
      check_output_is_safe(o);
      if (fs::is_directory(dir)) lock.emplace(lock_parts(o));
      if (o.resume && fs::exists(state_file(o))) {
        const std::string conflict = resume_conflict(o, calib, read_text_file(state_file(o)));
        require(conflict.empty(), "--resume: ", state_file(o), ": ", conflict, "; remove ", dir,
                " to start afresh");
        while (done < layers && fs::exists(layer_file(o, done))) ++done;
      } else {
        require(!fs::exists(dir) || o.resume, dir,
                " exists (an interrupted job): continue it with --resume or remove it");
        fs::create_directories(dir);
        if (!lock) lock.emplace(lock_parts(o));
        const fs::path tmp = state_file(o).string() + ".tmp";
        {
          std::ofstream out(tmp);
          out << job_state(o, calib) << std::flush;
          require(out.good(), "cannot write ", tmp, ": ", std::strerror(errno));
        }
        fs::rename(tmp, state_file(o));
      }
      // The output itself must be creatable where it will be renamed to.
      const fs::path probe = o.out + ".probe";
      {
        std::ofstream test(probe);
        require(test.good(), "output ", o.out, " is not writable: ", std::strerror(errno));
      }
      fs::remove(probe);
      fs::remove(o.out + ".tmp");  // stale, from a job killed while assembling (we hold the lock)
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  const auto message = std::as_bytes(std::span(error.data(), comm.is_root() ? error.size() : 0));
  const std::vector<std::byte> gathered = comm.all_gather(message);
  if (!gathered.empty()) {
    throw CollectiveError(
        std::string(reinterpret_cast<const char*>(gathered.data()), gathered.size()));
  }
  std::vector<std::byte> count(sizeof done);
  std::memcpy(count.data(), &done, sizeof done);
  comm.broadcast(count, 0);
  std::memcpy(&done, count.data(), sizeof done);
  return done;
}

// This process's peak resident set (getrusage: KiB on Linux).
double peak_rss_gib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string format_duration(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  if (s < 120)
    out << s << " s";
  else if (s < 7200)
    out << s / 60 << " min";
  else
    out << s / 3600 << " h";
  return out.str();
}

class Progress {
 public:
  Progress(std::ostream& log, bool enabled, std::int64_t layers)
      : log_(log), enabled_(enabled), layers_(layers), tty_(enabled && isatty(STDOUT_FILENO)) {}
  void layer_done(std::int64_t layer, double seconds, double ratio, const LayerTimings& t,
                  double elapsed, std::int64_t done_in_run, std::int64_t remaining) {
    if (!enabled_) return;
    const double eta = done_in_run > 0 ? elapsed / static_cast<double>(done_in_run) *
                                             static_cast<double>(remaining)
                                       : 0.0;
    if (tty_) log_ << "\r\033[K";
    log_ << "layer " << std::setw(4) << layer + 1 << "/" << layers_ << "  " << std::fixed
         << std::setprecision(2) << std::setw(7) << seconds << " s  gptq/rtn "
         << std::setprecision(3) << ratio << "  [load " << std::setprecision(2) << t.load << " fwd "
         << t.forward << " hess " << t.hessian << " reduce " << t.reduce << " factor " << t.factor
         << " solve " << t.solve << " exchange " << t.exchange << " write " << t.write
         << " release " << t.release << "; ahead: read " << t.ahead_read << " upload "
         << t.ahead_upload << "]  eta " << format_duration(eta) << '\n';
    if (tty_) {
      const std::int64_t filled = (layer + 1) * 40 / layers_;
      log_ << '[' << std::string(static_cast<std::size_t>(filled), '#')
           << std::string(static_cast<std::size_t>(40 - filled), '.') << "] " << layer + 1 << '/'
           << layers_ << std::flush;
    }
    log_.flush();
  }
  void finish() {
    if (tty_) log_ << "\r\033[K" << std::flush;
  }

 private:
  std::ostream& log_;
  bool enabled_;
  std::int64_t layers_;
  bool tty_;
};

void replace_linears(LayerWeights& weights, const LayerRecord& record) {
  for (const ModuleRecord& m : record.modules)
    weights[m.linear] = m.method == "none" ? m.float_weight : m.weight.dequantize();
}

std::unique_ptr<UnitStore> forward_units(const ModelConfig& config, const Backend& backend,
                                         const LayerWeights& weights, const RotaryTable& rope,
                                         const UnitStore& hidden, std::int64_t seq_len) {
  return backend.load_layer(config, weights, rope)->forward_all(hidden, seq_len);
}

void write_checkpoint(const JobOptions& o, const WeightSource& source, const TokenSet& calib,
                      const Communicator& comm, const Backend& backend,
                      const std::string& command_line, double seconds,
                      const std::vector<double>& layer_gptq, const std::vector<double>& layer_rtn) {
  const ModelConfig& config = source.config();
  // The layer files are copied in and stay until the checkpoint is complete: the checkpoint
  // needs their size again (and the model tensors') where it is written.
  std::uintmax_t payload = 0;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l)
    payload += fs::file_size(layer_file(o, l));
  const std::uintmax_t tensors = config.tie_word_embeddings ? 1 : 2;
  payload +=
      (tensors * config.vocab_size + 1) * config.hidden_size * dtype_size(config.torch_dtype);
  CheckpointWriter writer(o.out, payload);
  JobRecord record;
  record.qshard_version = kVersion;
  record.git_commit = kGitCommit;
  record.command_line = command_line;
  record.job_config = o.to_json();
  record.model_config = to_json(config);
  record.model_source = source.describe();
  record.ranks = comm.size();
  record.backend = backend.name();
  record.calibration_seed = static_cast<std::int64_t>(o.seed);
  record.calibration_hash = hex64(hash_tokens(calib));
  record.calibration_samples = calib.rows;
  record.calibration_seq_len = calib.cols;
  record.created_utc = utc_now();
  record.seconds = seconds;
  record.layers = config.num_hidden_layers;
  record.objective_gptq = layer_gptq;
  record.objective_rtn = layer_rtn;
  record.write(writer.root());
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l)
    writer.add_layer_file(layer_file(o, l), l);
  const DType dtype = config.torch_dtype;
  writer.write_model_tensor(std::string(kEmbedName), source.load(std::string(kEmbedName)), dtype);
  writer.write_model_tensor(std::string(kFinalNormName), source.load(std::string(kFinalNormName)),
                            dtype);
  if (!config.tie_word_embeddings)
    writer.write_model_tensor(std::string(kLmHeadName), source.load(std::string(kLmHeadName)),
                              dtype);
  writer.commit();
}

// The watchdog's end of the job: one line, then every rank is aborted (from the watchdog's thread:
// this rank's own thread is blocked in the collective).
[[noreturn]] void report_stalled(Communicator& comm, const JobOptions& o, const std::string& what,
                                 double waited) {
  const std::string line =
      str("qshard-quantize: error (rank ", comm.rank(), "): ", what, ": waited ",
          std::lround(waited), " s for the other ranks (--collective_timeout ",
          o.collective_timeout, "): a rank has stopped or hangs; ending the job\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  comm.abort(1);
  std::_Exit(1);  // not reached
}

}  // namespace

JobResult run_quantize_job(const JobOptions& o, Communicator& job_comm, const Backend& backend,
                           const std::string& command_line, std::ostream& log) {
  const auto job_start = Clock::now();
  // A rank that waits in a host collective longer than --collective_timeout (another rank stopped
  // or hangs) ends the job, naming the layer and stage; NCCL communicators have their own timeout.
  const bool host_collectives = backend.name() != "cuda" || o.collectives == "mpi";
  Watchdog watchdog(host_collectives ? o.collective_timeout : 0.0,
                    [&job_comm, &o](const std::string& what, double waited) {
                      report_stalled(job_comm, o, what, waited);
                    });
  WatchedCommunicator watched(job_comm, watchdog);
  Communicator& comm = host_collectives ? watched : job_comm;
  std::unique_ptr<WeightSource> source;
  TokenSet calib;
  std::string setup_error;
  try {
    // An HF directory is validated whole here, before OUT.parts exists and any layer computes.
    source = open_model(o.model, o.model_seed, {.allow_extra_tensors = o.allow_extra_tensors});
    calib = load_calibration(o, source->config());
  } catch (const std::exception& e) {
    setup_error = e.what();
  }
  if (comm.any(!setup_error.empty())) {
    throw CollectiveError(setup_error.empty() ? "another rank failed to set up the job"
                                              : setup_error);
  }
  const ModelConfig& config = source->config();
  const std::int64_t layers = config.num_hidden_layers;
  std::optional<FileLock> lock;  // rank 0 holds OUT.parts/lock for the job's lifetime
  const std::int64_t done = prepare_parts(o, calib, comm, layers, lock);

  const std::int64_t units = unit_count(o.samples, o.batch_samples);
  const UnitRange mine = units_of_rank(units, comm.rank(), comm.size());
  const RotaryTable rope(config, o.seq_len);
  const MatrixF embedding = source->load(std::string(kEmbedName));
  std::unique_ptr<UnitStore> hidden;
  {
    std::vector<MatrixF> units;
    for (std::int64_t u = mine.first; u < mine.last; ++u) {
      const std::int64_t begin = u * o.batch_samples,
                         end = std::min(o.samples, begin + o.batch_samples);
      units.push_back(embed_tokens(embedding, calib.rows_span(begin, end)));
    }
    // Kept where the backend computes (the GPU's memory for CUDA) from here to the last layer.
    hidden = backend.store_units(config, std::move(units));
  }
  if (comm.is_root() && !o.quiet) {
    log << "qshard-quantize: " << source->describe() << ", " << layers << " layers, " << comm.size()
        << " rank(s), backend " << backend.name() << ", " << o.method << " " << describe(o.gptq)
        << ", " << o.samples << " x " << o.seq_len << " calibration tokens\n";
    if (done > 0)
      log << "resuming after " << done << " completed layer(s) from " << parts_dir(o) << '\n';
  }

  // Resume: replay the completed layers' quantized weights to rebuild this rank's inputs.
  for (std::int64_t l = 0; l < done; ++l) {
    LayerWeights weights = LayerWeights::load(*source, l);
    const h5::File part = h5::File::open_read(layer_file(o, l));
    replace_linears(weights, read_layer(part, l));
    hidden = forward_units(config, backend, weights, rope, *hidden, o.seq_len);
  }

  Progress progress(log, comm.is_root() && !o.quiet, layers);
  JobResult result;
  std::vector<double> layer_gptq(static_cast<std::size_t>(layers), 0.0);
  std::vector<double> layer_rtn(static_cast<std::size_t>(layers), 0.0);
  // Two I/O threads work while the current layer computes: the loader reads (or generates) the
  // next layer's weights and prepares them where the backend computes (the upload to the GPU);
  // the writer brings rank 0's finished layer to the host and writes its file. Only the writer
  // uses HDF5 (the job's weights come from safetensors or are generated), in submission order.
  SerialWorker loader(SerialWorker::Priority::Background);
  SerialWorker writer(SerialWorker::Priority::Background);
  struct LoadedLayer {
    std::unique_ptr<LayerWeights> weights;  // at a fixed address: the resident layer reads it
    std::unique_ptr<ResidentLayer> resident;
    double read_seconds = 0.0, upload_seconds = 0.0;
  };
  const auto load_ahead = [&](std::int64_t l) {
    return loader.submit([&source = *source, &backend, &config, &rope, l] {
      LoadedLayer loaded;
      {
        const ScopedTimer timer(loaded.read_seconds);
        loaded.weights = std::make_unique<LayerWeights>(LayerWeights::load(source, l));
      }
      {
        const ScopedTimer timer(loaded.upload_seconds);
        loaded.resident = backend.load_layer(config, *loaded.weights, rope);
      }
      return loaded;
    });
  };
  std::future<LoadedLayer> upcoming;
  if (done < layers) upcoming = load_ahead(done);
  std::future<void> written;  // the previous layer's file
  const auto wait_written = [&written] {
    if (written.valid()) written.get();
  };
  const auto loop_start = Clock::now();
  for (std::int64_t l = done; l < layers; ++l) {
    const auto layer_start = Clock::now();
    LayerTimings timings;
    LoadedLayer loaded = upcoming.get();
    if (l + 1 < layers) upcoming = load_ahead(l + 1);
    const LayerWeights& weights = *loaded.weights;
    timings.load = std::chrono::duration<double>(Clock::now() - layer_start).count();
    timings.ahead_read = loaded.read_seconds;
    timings.ahead_upload = loaded.upload_seconds;
    const LayerContext context{config, o, backend, comm, rope, comm.is_root()};
    LayerRecord record;
    record.index = l;
    record.input_norm = weights.input_norm;
    record.post_norm = weights.post_norm;
    std::unique_ptr<UnitStore> next;
    QuantizedModules quantized;  // rank 0: brought to the host by the writer
    watched.set_layer(l);
    try {
      record.modules = quantize_layer(context, weights, *loaded.resident, *hidden, timings, &next,
                                      comm.is_root() ? &quantized : nullptr);
    } catch (const CollectiveError& e) {
      throw CollectiveError(str("layer ", l, ": ", e.what()));
    } catch (const Error& e) {
      throw Error(str("layer ", l, ": ", e.what()));
    }
    {
      const ScopedTimer timer(timings.release);
      loaded.resident.reset();
      hidden = std::move(next);
    }
    for (const ModuleRecord& m : record.modules) {
      if (m.method == "none") continue;
      layer_gptq[static_cast<std::size_t>(l)] += m.objective_gptq;
      layer_rtn[static_cast<std::size_t>(l)] += m.objective_rtn;
    }
    if (comm.is_root()) {
      const auto write_start = Clock::now();
      wait_written();
      record.seconds = std::chrono::duration<double>(write_start - layer_start).count();
      written =
          writer.submit([path = layer_file(o, l), record = std::move(record),
                         quantized = std::move(quantized), dtype = config.torch_dtype]() mutable {
            for (std::size_t m = 0; m < quantized.size(); ++m)
              if (quantized[m]) record.modules[m].weight = quantized[m]->to_host();
            quantized.clear();  // the device copies go as soon as they are on the host
            write_layer_file(path, record, dtype);
          });
      timings.write = std::chrono::duration<double>(Clock::now() - write_start).count();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - layer_start).count();
    const double elapsed = std::chrono::duration<double>(Clock::now() - loop_start).count();
    const double ratio =
        layer_rtn[static_cast<std::size_t>(l)] > 0
            ? layer_gptq[static_cast<std::size_t>(l)] / layer_rtn[static_cast<std::size_t>(l)]
            : 1.0;
    progress.layer_done(l, seconds, ratio, timings, elapsed, l - done + 1, layers - l - 1);
    if (o.stop_after_layers >= 0 && l + 1 >= o.stop_after_layers && l + 1 < layers) {
      wait_written();
      comm.barrier();  // every finished layer's file exists before any rank leaves
      progress.finish();
      if (comm.is_root() && !o.quiet)
        log << "stopped after " << l + 1 << " layers (stop_after_layers)\n";
      return result;
    }
  }
  wait_written();
  progress.finish();

  // Objectives of resumed layers come from their files.
  if (comm.is_root()) {
    for (std::int64_t l = 0; l < done; ++l) {
      const h5::File part = h5::File::open_read(layer_file(o, l));
      for (const ModuleRecord& m : read_layer(part, l).modules) {
        if (m.method == "none") continue;
        layer_gptq[static_cast<std::size_t>(l)] += m.objective_gptq;
        layer_rtn[static_cast<std::size_t>(l)] += m.objective_rtn;
      }
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - job_start).count();
  for (std::size_t l = 0; l < layer_gptq.size(); ++l) {
    result.objective_gptq += layer_gptq[l];
    result.objective_rtn += layer_rtn[l];
  }
  const double layers_seconds = std::chrono::duration<double>(Clock::now() - loop_start).count();
  const auto checkpoint_start = Clock::now();
  std::string error;
  if (comm.is_root()) {
    try {
      write_checkpoint(o, *source, calib, comm, backend, command_line, result.seconds, layer_gptq,
                       layer_rtn);
      fs::remove_all(parts_dir(o));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  // Unwatched: assembling a large checkpoint may take longer than any collective timeout.
  if (job_comm.any(!error.empty())) {
    throw CollectiveError(error.empty() ? "rank 0 failed to write the checkpoint" : error);
  }
  result.completed = true;
  const double checkpoint_seconds =
      std::chrono::duration<double>(Clock::now() - checkpoint_start).count();
  if (comm.is_root() && !o.quiet) {
    const double setup_seconds = std::chrono::duration<double>(loop_start - job_start).count();
    log << "wrote " << o.out << " in " << format_duration(result.seconds + checkpoint_seconds)
        << " (setup " << format_duration(setup_seconds) << ", layers "
        << format_duration(layers_seconds) << ", checkpoint " << format_duration(checkpoint_seconds)
        << "); objective gptq/rtn " << std::setprecision(4)
        << (result.objective_rtn > 0 ? result.objective_gptq / result.objective_rtn : 1.0)
        << "; peak host memory " << std::setprecision(3) << peak_rss_gib() << " GiB (rank 0)\n";
  }
  return result;
}

}  // namespace qshard

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

#include "qshard/comm/watched_communicator.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/file_lock.hpp"
#include "qshard/core/fnv1a.hpp"
#include "qshard/core/scoped_timer.hpp"
#include "qshard/core/serial_worker.hpp"
#include "qshard/core/text_file.hpp"
#include "qshard/core/watchdog.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/job_record.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/calibration.hpp"
#include "qshard/pipeline/layer_groups.hpp"
#include "qshard/pipeline/layer_quantizer.hpp"
#include "qshard/pipeline/progress.hpp"
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

// Rank 0 prepares OUT.parts/ (fresh, or checked for --resume) and returns, for each block of
// layers, the first layer not done (the block's layers with files, counted from its start); the
// outcome (or the error) reaches every rank, so no rank is left waiting.
std::vector<std::int64_t> prepare_parts(const JobOptions& o, const TokenSet& calib,
                                        Communicator& comm, const std::vector<LayerBlock>& blocks,
                                        std::optional<FileLock>& lock) {
  std::vector<std::int64_t> start;
  for (const LayerBlock& b : blocks) start.push_back(b.begin);
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
        for (std::size_t g = 0; g < blocks.size(); ++g)
          while (start[g] < blocks[g].end && fs::exists(layer_file(o, start[g]))) ++start[g];
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
  comm.broadcast(std::as_writable_bytes(std::span(start)), 0);
  return start;
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

void replace_linears(LayerWeights& weights, const LayerRecord& record) {
  for (const ModuleRecord& m : record.modules)
    weights[m.module] = m.method == "none" ? m.float_weight : m.weight.dequantize();
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
  if (o.layer_groups > 1)
    for (const LayerBlock& block : layer_blocks(config, o.layer_groups))
      record.layer_block_starts.push_back(block.begin);
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

// What every step of the job reads: the options, the ranks, the backend, the model and progress.
struct JobContext {
  const JobOptions& options;
  Communicator& comm;  // watched for stalls when the collectives are on the host
  WatchedCommunicator& watched;
  const Backend& backend;
  const WeightSource& source;
  const ModelConfig& config;
  const RotaryTable& rope;
  JobProgress& progress;
  LayerBlock block;  // the layers this rank's group quantizes (all of them without layer groups)
};

bool synthetic(const JobOptions& o) { return o.model.rfind("synthetic:", 0) == 0; }

// "gptq 4-bit, group 32, ..." with the solver's settings, or "rtn 4-bit, group 32, asym" with
// only those round-to-nearest uses.
std::string describe_method(const JobOptions& o) {
  if (o.method == "gptq") return "gptq " + describe(o.gptq);
  const QuantConfig& q = o.gptq.quant;
  return str("rtn ", q.bits, "-bit, group ", q.group_size, q.sym ? ", sym" : ", asym",
             q.mse ? ", mse" : "");
}

struct JobInputs {
  std::unique_ptr<WeightSource> source;
  TokenSet calib;
};

// Opens the model and reads (or draws) the calibration tokens on every rank; a failure on any
// rank ends the job on all of them.
JobInputs open_inputs(const JobOptions& o, Communicator& comm, JobProgress& progress) {
  if (comm.is_root())  // once per job (with layer groups every group's first rank reports)
    progress.line(str("qshard-quantize: opening ", o.model, " and the calibration tokens (",
                      o.calib.empty() ? "random ids" : o.calib, ")"));
  progress.begin("opening the model and the calibration tokens", "", 0, 0);
  JobInputs inputs;
  std::string error;
  try {
    // An HF directory is validated whole here, before OUT.parts exists and any layer computes.
    inputs.source =
        open_model(o.model, o.model_seed, {.allow_extra_tensors = o.allow_extra_tensors});
    inputs.calib = load_calibration(o, inputs.source->config());
  } catch (const std::exception& e) {
    error = e.what();
  }
  throw_if_any_failed(comm, error);
  return inputs;
}

void print_header(const JobContext& job, std::int64_t start, int ranks) {
  const std::int64_t done = start - job.block.begin;
  const JobOptions& o = job.options;
  const std::int64_t layers = job.config.num_hidden_layers;
  job.progress.line(str("qshard-quantize: ", job.source.describe(), ", ", layers, " layers (0..",
                        layers - 1, "), ", ranks, " rank(s), backend ", job.backend.name(), ", ",
                        describe_method(o), ", ", o.samples, " x ", o.seq_len,
                        " calibration tokens"));
  if (o.method == "gptq")
    job.progress.line(
        "  gptq/rtn: a layer's GPTQ objective tr((W-Q) H (W-Q)^T) over round-to-nearest's on the "
        "same Hessian H; lower is better, 1 is no gain");
  if (done > 0)
    job.progress.line(
        str("resuming after ", done, " completed layer(s) from ", parts_dir(o).string()));
}

// This rank's calibration units embedded, kept where the backend computes (the GPU's memory for
// CUDA) from here to the last layer.
std::unique_ptr<UnitStore> embed_calibration(const JobContext& job, const TokenSet& calib) {
  const JobOptions& o = job.options;
  const std::string table =
      str("the embedding table (", job.config.vocab_size, " x ", job.config.hidden_size, ")");
  const std::string how = synthetic(o) ? "generating " : "reading ";
  job.progress.line(str("qshard-quantize: ", how, table, ", then embedding each rank's units"));
  job.progress.begin(how + table, "", 0, 0);
  const MatrixF embedding = job.source.load(std::string(kEmbedName));
  const std::int64_t units = unit_count(o.samples, o.batch_samples);
  const UnitRange mine = units_of_rank(units, job.comm.rank(), job.comm.size());
  job.progress.begin("embedding rank 0's calibration units", "units", mine.last - mine.first, 0);
  std::vector<MatrixF> embedded;
  for (std::int64_t u = mine.first; u < mine.last; ++u) {
    const std::int64_t begin = u * o.batch_samples,
                       end = std::min(o.samples, begin + o.batch_samples);
    embedded.push_back(embed_tokens(embedding, calib.rows_span(begin, end)));
    job.progress.advance(u - mine.first + 1);
  }
  return job.backend.store_units(job.config, std::move(embedded));
}

// Resume: replays the block's completed layers' quantized weights to rebuild this rank's inputs.
std::unique_ptr<UnitStore> replay_completed(const JobContext& job, std::int64_t start,
                                            std::unique_ptr<UnitStore> hidden) {
  const JobOptions& o = job.options;
  job.progress.begin("replaying the completed layers", "layers", start - job.block.begin, 0);
  for (std::int64_t l = job.block.begin; l < start; ++l) {
    LayerWeights weights = LayerWeights::load(job.source, l);
    const h5::File part = h5::File::open_read(layer_file(o, l));
    replace_linears(weights, read_layer(part, job.config, l));
    hidden = forward_units(job.config, job.backend, weights, job.rope, *hidden, o.seq_len);
    job.progress.advance(l + 1 - job.block.begin);
  }
  return hidden;
}

// --layer_groups: this rank's inputs of its group's first layer. Group 0 embeds its units; each
// later group receives them from the same rank of the group before, which forwards them through
// its block in floating point (the original weights) and sends them on before it quantizes. So
// every group starts as soon as the blocks before it have been forwarded once. The backend moves
// them (host messages on the CPU; NCCL or pinned staging between GPUs), one fixed unit at a time,
// so nothing depends on timing.
std::unique_ptr<UnitStore> block_inputs(const JobContext& job, Communicator& world, int group,
                                        int groups, const TokenSet& calib) {
  const int per_group = world.size() / groups;
  std::unique_ptr<UnitStore> hidden;
  if (group == 0) {
    hidden = embed_calibration(job, calib);
  } else {
    job.progress.begin(str("waiting for group ", group - 1, "'s floating-point outputs"), "", 0, 0);
    double waited = 0.0;
    {
      const ScopedTimer timer(waited);
      hidden = job.backend.receive_units(job.config, world, world.rank() - per_group);
    }
    job.progress.line(
        str("group ", group, ": received its inputs after ", format_duration(waited)));
  }
  if (group + 1 < groups) {
    const LayerBlock& b = job.block;
    job.progress.begin(
        str("floating-point forward of layers ", b.begin, "-", b.end - 1, " for group ", group + 1),
        "layers", b.size(), 0);
    std::unique_ptr<UnitStore> out;
    double forward_seconds = 0.0, send_seconds = 0.0;
    {
      const ScopedTimer timer(forward_seconds);
      for (std::int64_t l = b.begin; l < b.end; ++l) {
        const LayerWeights weights = LayerWeights::load(job.source, l);
        out = forward_units(job.config, job.backend, weights, job.rope, out ? *out : *hidden,
                            job.options.seq_len);
        job.progress.advance(l + 1 - b.begin);
      }
    }
    {
      const ScopedTimer timer(send_seconds);
      job.backend.send_units(job.config, *out, world, world.rank() + per_group);
    }
    job.progress.line(str("group ", group, ": floating-point forward of layers ", b.begin, "-",
                          b.end - 1, " in ", format_duration(forward_seconds),
                          ", its outputs sent to group ", group + 1, " in ",
                          format_duration(send_seconds)));
  }
  return hidden;
}

// A layer read (or generated) and prepared where the backend computes, ahead of its turn.
struct LoadedLayer {
  std::unique_ptr<LayerWeights> weights;  // at a fixed address: the resident layer reads it
  std::unique_ptr<ResidentLayer> resident;
  double read_seconds = 0.0, upload_seconds = 0.0;
};

// The layer loop's two I/O threads, working while the current layer computes: the loader reads (or
// generates) the next layer's weights and prepares them where the backend computes (the upload to
// the GPU); the writer brings rank 0's finished layer to the host and writes its file. Only the
// writer uses HDF5 (the job's weights come from safetensors or are generated), in submission order.
class LayerIo {
 public:
  explicit LayerIo(const JobContext& job) : job_(job) {}

  void load_ahead(std::int64_t l) {
    upcoming_ = loader_.submit([&source = job_.source, &backend = job_.backend,
                                &config = job_.config, &rope = job_.rope, l] {
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
  }
  LoadedLayer take() { return upcoming_.get(); }

  // Rank 0: hands the layer to the writer once the previous layer's file is written.
  void write(std::int64_t l, LayerRecord record, QuantizedModules quantized) {
    written_ = writer_.submit([path = layer_file(job_.options, l), record = std::move(record),
                               quantized = std::move(quantized), &config = job_.config,
                               dtype = job_.config.torch_dtype]() mutable {
      for (std::size_t m = 0; m < quantized.size(); ++m)
        if (quantized[m]) record.modules[m].weight = quantized[m]->to_host();
      quantized.clear();  // the device copies go as soon as they are on the host
      write_layer_file(path, config, record, dtype);
    });
  }
  void wait_written() {
    if (written_.valid()) written_.get();
  }

 private:
  const JobContext& job_;
  SerialWorker loader_{SerialWorker::Priority::Background};
  SerialWorker writer_{SerialWorker::Priority::Background};
  std::future<LoadedLayer> upcoming_;
  std::future<void> written_;  // the previous layer's file
};

// Each layer's summed module objectives (GPTQ and round-to-nearest), in layer order.
struct Objectives {
  std::vector<double> gptq, rtn;

  explicit Objectives(std::int64_t layers)
      : gptq(static_cast<std::size_t>(layers), 0.0), rtn(static_cast<std::size_t>(layers), 0.0) {}
  void add(std::int64_t l, const std::vector<ModuleRecord>& modules) {
    for (const ModuleRecord& m : modules) {
      if (m.method == "none") continue;
      gptq[static_cast<std::size_t>(l)] += m.objective_gptq;
      rtn[static_cast<std::size_t>(l)] += m.objective_rtn;
    }
  }
  double ratio(std::int64_t l) const {
    const auto i = static_cast<std::size_t>(l);
    return rtn[i] > 0 ? gptq[i] / rtn[i] : 1.0;
  }
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "layer 3 experts: calibration tokens min 93 / median 128 / max 201 over 8 experts (2 per
// token)": what the routed experts' Hessians were built from.
std::string expert_tokens_line(std::int64_t l, const LayerRecord& record) {
  std::vector<std::int64_t> tokens;
  for (const ModuleRecord& m : record.modules)
    if (m.module.expert >= 0 && m.module.linear == Linear::Gate)
      tokens.push_back(m.calibration_tokens);
  if (tokens.empty()) return str("layer ", l, " experts: none quantized");
  std::sort(tokens.begin(), tokens.end());
  return str("layer ", l, " experts: calibration tokens min ", tokens.front(), " / median ",
             tokens[tokens.size() / 2], " / max ", tokens.back(), " over ", tokens.size(),
             " experts");
}

// Quantizes one layer with the record rank 0 writes; errors name the layer.
LayerRecord quantize_loaded(const JobContext& job, std::int64_t l, LoadedLayer& loaded,
                            const UnitStore& hidden, LayerTimings& timings,
                            std::unique_ptr<UnitStore>& next, QuantizedModules& quantized) {
  const LayerContext context{job.config, job.options,        job.backend,   job.comm,
                             job.rope,   job.comm.is_root(), &job.progress, l};
  LayerRecord record;
  record.index = l;
  record.input_norm = loaded.weights->input_norm;
  record.post_norm = loaded.weights->post_norm;
  record.q_norm = loaded.weights->q_norm;
  record.k_norm = loaded.weights->k_norm;
  record.router = loaded.weights->router;
  record.shared_expert_gate = loaded.weights->shared_expert_gate;
  job.watched.set_layer(l);
  try {
    record.modules = quantize_layer(context, *loaded.weights, *loaded.resident, hidden, timings,
                                    &next, job.comm.is_root() ? &quantized : nullptr);
  } catch (const CollectiveError& e) {
    throw CollectiveError(str("layer ", l, ": ", e.what()));
  } catch (const Error& e) {
    throw Error(str("layer ", l, ": ", e.what()));
  }
  return record;
}

// One layer of the loop: wait for its weights (loading the next behind it), quantize it, free it,
// hand it to the writer (rank 0), and report it. Its stages' seconds add up to its wall time with
// `other`, the bookkeeping in between.
void run_layer(const JobContext& job, LayerIo& io, std::int64_t l,
               std::unique_ptr<UnitStore>& hidden, Objectives& objectives, LayerSummary& summary) {
  const auto layer_start = Clock::now();
  job.progress.start_layer(l);
  job.progress.begin(str("waiting for the layer's weights (",
                         synthetic(job.options) ? "generated" : "read", " ahead)"),
                     "", 0, 0);
  LayerTimings& timings = summary.timings;
  LoadedLayer loaded = io.take();
  if (l + 1 < job.block.end) io.load_ahead(l + 1);
  timings.load = seconds_since(layer_start);
  timings.ahead_read = loaded.read_seconds;
  timings.ahead_upload = loaded.upload_seconds;
  std::unique_ptr<UnitStore> next;
  QuantizedModules quantized;  // rank 0: brought to the host by the writer
  LayerRecord record = quantize_loaded(job, l, loaded, *hidden, timings, next, quantized);
  job.progress.begin("freeing the layer", "", 0, 0);
  {
    const ScopedTimer timer(timings.release);
    loaded.resident.reset();
    hidden = std::move(next);
  }
  objectives.add(l, record.modules);
  if (job.config.sparse_layer(l)) job.progress.line(expert_tokens_line(l, record));
  if (job.comm.is_root()) {
    job.progress.begin("waiting for the previous layer's file", "", 0, 0);
    const auto write_start = Clock::now();
    io.wait_written();
    record.seconds = std::chrono::duration<double>(write_start - layer_start).count();
    io.write(l, std::move(record), std::move(quantized));
    timings.write = seconds_since(write_start);
  }
  summary.index = l;
  summary.seconds = seconds_since(layer_start);
  summary.gptq = job.options.method == "gptq";
  summary.ratio = objectives.ratio(l);
}

// Rank 0: the objectives of the layers this run did not compute (resumed, or another group's),
// from their files.
void add_file_objectives(const JobOptions& o, const ModelConfig& config,
                         const std::vector<bool>& computed, Objectives& objectives) {
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    if (computed[static_cast<std::size_t>(l)]) continue;
    const h5::File part = h5::File::open_read(layer_file(o, l));
    objectives.add(l, read_layer(part, config, l).modules);
  }
}

// The layer loop from the first layer not done; false when stopped by stop_after_layers.
bool run_layers(const JobContext& job, std::int64_t start, std::unique_ptr<UnitStore> hidden,
                Objectives& objectives) {
  const JobOptions& o = job.options;
  const std::int64_t end = job.block.end;
  LayerIo io(job);
  if (start < end) io.load_ahead(start);
  const auto loop_start = Clock::now();
  for (std::int64_t l = start; l < end; ++l) {
    LayerSummary summary;
    run_layer(job, io, l, hidden, objectives, summary);
    summary.eta = seconds_since(loop_start) / static_cast<double>(l - start + 1) *
                  static_cast<double>(end - l - 1);
    job.progress.layer_done(summary);
    // stop_after_layers counts the layers of the block (of the model without layer groups).
    if (o.stop_after_layers >= 0 && l + 1 - job.block.begin >= o.stop_after_layers && l + 1 < end) {
      io.wait_written();
      job.comm.barrier();  // every finished layer's file exists before any rank leaves
      job.progress.finish();
      job.progress.line(str("stopped after ", l + 1, " layers (stop_after_layers)"));
      return false;
    }
  }
  io.wait_written();
  job.progress.finish();
  return true;
}

// Rank 0 assembles the checkpoint from the layer files and removes them; a failure reaches every
// rank. Unwatched: assembling a large checkpoint may take longer than any collective timeout.
void assemble_checkpoint(const JobContext& job, Communicator& job_comm, const TokenSet& calib,
                         const std::string& command_line, double seconds,
                         const Objectives& objectives) {
  job.progress.begin("writing the checkpoint", "", 0, 0);
  std::string error;
  if (job.comm.is_root()) {
    try {
      write_checkpoint(job.options, job.source, calib, job.comm, job.backend, command_line, seconds,
                       objectives.gptq, objectives.rtn);
      fs::remove_all(parts_dir(job.options));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  throw_if_any_failed(job_comm, error);
}

// Seconds of the job's three parts, for its last line.
struct JobSeconds {
  double setup = 0.0, layers = 0.0, checkpoint = 0.0;
};

void print_summary(const JobContext& job, const JobResult& result, const JobSeconds& s) {
  std::ostringstream line;
  line << "wrote " << job.options.out << " in " << format_duration(result.seconds + s.checkpoint)
       << " (setup " << format_duration(s.setup) << ", layers " << format_duration(s.layers)
       << ", checkpoint " << format_duration(s.checkpoint) << ")";
  if (job.options.method == "gptq")
    line << "; objective gptq/rtn " << std::setprecision(4)
         << (result.objective_rtn > 0 ? result.objective_gptq / result.objective_rtn : 1.0);
  line << "; peak host memory " << std::setprecision(3) << peak_rss_gib() << " GiB (rank 0)";
  job.progress.line(line.str());
}

}  // namespace

JobResult run_quantize_job(const JobOptions& o, Communicator& job_comm, const Backend& backend,
                           const std::string& command_line, std::ostream& log) {
  return run_quantize_job(o, JobCommunicators{job_comm, job_comm}, backend, command_line, log);
}

JobResult run_quantize_job(const JobOptions& o, const JobCommunicators& comms,
                           const Backend& backend, const std::string& command_line,
                           std::ostream& log) {
  const auto job_start = Clock::now();
  Communicator& world_comm = comms.world;
  Communicator& group_comm = comms.group;
  const bool grouped = o.layer_groups > 1;
  require(grouped || &world_comm == &group_comm,
          "run_quantize_job: a group communicator without --layer_groups");
  // A rank that waits in a host collective longer than --collective_timeout (another rank stopped
  // or hangs) ends the job, naming the layer and stage; NCCL communicators have their own timeout.
  const bool host_collectives = backend.name() != "cuda" || o.collectives == "mpi";
  Watchdog watchdog(host_collectives ? o.collective_timeout : 0.0,
                    [&world_comm, &o](const std::string& what, double waited) {
                      report_stalled(world_comm, o, what, waited);
                    });
  WatchedCommunicator watched_world(world_comm, watchdog);
  WatchedCommunicator watched(group_comm, watchdog);
  Communicator& world = host_collectives ? watched_world : world_comm;
  Communicator& comm = host_collectives ? watched : group_comm;
  JobProgress progress(log, group_comm.is_root()
                                ? progress_mode(o.progress, o.quiet, isatty(STDOUT_FILENO))
                                : ProgressMode::None);
  const Heartbeat heartbeat(progress);
  const JobInputs inputs = open_inputs(o, world, progress);
  const ModelConfig& config = inputs.source->config();
  progress.set_layers(config.num_hidden_layers);
  const std::vector<LayerBlock> blocks = [&] {
    try {  // the same model and options on every rank: every rank fails alike
      return layer_blocks(config, o.layer_groups);
    } catch (const Error& e) {
      throw CollectiveError(e.what());
    }
  }();
  const int group = grouped ? world_comm.rank() / group_comm.size() : 0;
  std::optional<FileLock> lock;  // rank 0 holds OUT.parts/lock for the job's lifetime
  const std::vector<std::int64_t> starts = prepare_parts(o, inputs.calib, world, blocks, lock);
  const std::int64_t start = starts[static_cast<std::size_t>(group)];
  const RotaryTable rope(config, o.seq_len);
  const JobContext job{o,       comm,           watched,
                       backend, *inputs.source, config,
                       rope,    progress,       blocks[static_cast<std::size_t>(group)]};
  if (world_comm.is_root()) {
    print_header(job, start, world_comm.size());
    if (grouped)
      progress.line(str("layer groups: ", o.layer_groups, " groups of ", group_comm.size(),
                        " rank(s), ", describe_blocks(config, blocks),
                        "; each block starts from the floating-point outputs of the one before"));
  }

  Objectives objectives(config.num_hidden_layers);
  JobSeconds seconds;
  JobResult result;
  Clock::time_point loop_start;
  try {
    std::unique_ptr<UnitStore> hidden =
        grouped ? block_inputs(job, world_comm, group, o.layer_groups, inputs.calib)
                : embed_calibration(job, inputs.calib);
    hidden = replay_completed(job, start, std::move(hidden));
    seconds.setup = seconds_since(job_start);
    loop_start = Clock::now();
    if (!run_layers(job, start, std::move(hidden), objectives)) return result;
  } catch (const CollectiveError& e) {
    // A group's agreed error leaves the other groups waiting for it: end the whole job.
    if (!grouped) throw;
    throw Error(str("group ", group, ": ", e.what()));
  }
  if (grouped) world_comm.barrier();  // unwatched: the groups finish at different times
  if (world_comm.is_root()) {
    std::vector<bool> computed(static_cast<std::size_t>(config.num_hidden_layers), false);
    for (std::int64_t l = start; l < job.block.end; ++l)
      computed[static_cast<std::size_t>(l)] = true;
    add_file_objectives(o, config, computed, objectives);
  }
  result.seconds = seconds_since(job_start);
  for (std::size_t l = 0; l < objectives.gptq.size(); ++l) {
    result.objective_gptq += objectives.gptq[l];
    result.objective_rtn += objectives.rtn[l];
  }
  seconds.layers = seconds_since(loop_start);
  const auto checkpoint_start = Clock::now();
  const JobContext whole{o,       world,          watched_world,
                         backend, *inputs.source, config,
                         rope,    progress,       {0, config.num_hidden_layers}};
  assemble_checkpoint(whole, world_comm, inputs.calib, command_line, result.seconds, objectives);
  result.completed = true;
  seconds.checkpoint = seconds_since(checkpoint_start);
  if (world_comm.is_root()) print_summary(whole, result, seconds);
  return result;
}

}  // namespace qshard

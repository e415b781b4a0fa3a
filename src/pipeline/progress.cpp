#include "qshard/pipeline/progress.hpp"

#include <iomanip>
#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds with two decimals, for the stages of a layer line.
std::string seconds2(double s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2) << s;
  return out.str();
}

std::string stage_seconds(const LayerTimings& t, bool gptq, double wall) {
  std::ostringstream out;
  out << "load " << seconds2(t.load) << " fwd " << seconds2(t.forward) << " hess "
      << seconds2(t.hessian) << " reduce " << seconds2(t.reduce);
  if (gptq) out << " factor " << seconds2(t.factor);
  out << " solve " << seconds2(t.solve) << " exchange " << seconds2(t.exchange) << " write "
      << seconds2(t.write) << " release " << seconds2(t.release) << " other "
      << seconds2(t.other(wall)) << "; ahead: read " << seconds2(t.ahead_read) << " upload "
      << seconds2(t.ahead_upload);
  return out.str();
}

}  // namespace

ProgressMode progress_mode(const std::string& option, bool quiet, bool terminal) {
  require(option == "lines" || option == "bar" || option == "none",
          "progress: expected lines, bar or none (got '", option, "')");
  if (quiet || option == "none") return ProgressMode::None;
  return option == "bar" && terminal ? ProgressMode::Bar : ProgressMode::Lines;
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

std::string layer_label(std::int64_t index, std::int64_t layers) {
  return str("layer ", index, " (", index + 1, "/", layers, ")");
}

std::string layer_line(const LayerSummary& s, std::int64_t layers) {
  std::ostringstream out;
  out << layer_label(s.index, layers) << "  " << std::fixed << std::setprecision(2) << std::setw(7)
      << s.seconds << " s";
  if (s.gptq) out << "  gptq/rtn " << std::setprecision(3) << s.ratio;
  out << "  [" << stage_seconds(s.timings, s.gptq, s.seconds) << "]  eta "
      << format_duration(s.eta);
  return out.str();
}

std::string status_line(const Activity& a, std::int64_t layer, std::int64_t layers,
                        double layer_started, double now) {
  std::ostringstream out;
  out << "  " << (layer < 0 ? std::string("start-up") : layer_label(layer, layers)) << ' '
      << std::fixed << std::setprecision(0) << now - layer_started << " s: " << a.what;
  if (!a.unit.empty()) {
    out << ": " << a.unit << ' ' << a.done << '/' << a.total;
    const double elapsed = now - a.started;
    if (a.done > a.first && elapsed > 0)
      out << " (" << std::setprecision(2) << static_cast<double>(a.done - a.first) / elapsed << ' '
          << a.unit << "/s)";
  }
  out << ", " << std::setprecision(0) << now - a.started << " s in it";
  return out.str();
}

JobProgress::JobProgress(std::ostream& log, ProgressMode mode, Clock clock,
                         double heartbeat_seconds)
    : log_(log),
      mode_(mode),
      clock_(std::move(clock)),
      heartbeat_(heartbeat_seconds),
      layer_started_(clock_()),
      last_output_(layer_started_) {
  activity_.what = "starting";
  activity_.started = layer_started_;
}

JobProgress::JobProgress(std::ostream& log, ProgressMode mode)
    : JobProgress(log, mode, steady_seconds, mode == ProgressMode::Bar ? 1.0 : 10.0) {}

void JobProgress::set_layers(std::int64_t layers) {
  const std::lock_guard lock(mutex_);
  layers_ = layers;
}

void JobProgress::line(const std::string& text) {
  const std::lock_guard lock(mutex_);
  print_line(text);
}

void JobProgress::start_layer(std::int64_t index) {
  const std::lock_guard lock(mutex_);
  layer_ = index;
  layer_started_ = clock_();
}

void JobProgress::layer_done(const LayerSummary& summary) {
  const std::lock_guard lock(mutex_);
  ++layers_done_;
  print_line(layer_line(summary, layers_));
}

void JobProgress::finish() {
  const std::lock_guard lock(mutex_);
  if (mode_ == ProgressMode::Bar) log_ << "\r\033[K" << std::flush;
}

void JobProgress::begin(std::string what, std::string unit, std::int64_t total, std::int64_t done) {
  const std::lock_guard lock(mutex_);
  activity_ = {std::move(what), std::move(unit), total, done, done, clock_()};
}

void JobProgress::advance(std::int64_t done) {
  const std::lock_guard lock(mutex_);
  activity_.done = done;
}

bool JobProgress::tick() {
  const std::lock_guard lock(mutex_);
  const double now = clock_();
  if (mode_ == ProgressMode::None || now - last_output_ < heartbeat_) return false;
  const std::string status = status_line(activity_, layer_, layers_, layer_started_, now);
  if (mode_ == ProgressMode::Bar)
    draw_bar(status);
  else
    log_ << status << '\n' << std::flush;
  last_output_ = now;
  return true;
}

void JobProgress::print_line(const std::string& text) {
  if (mode_ == ProgressMode::None) return;
  if (mode_ == ProgressMode::Bar) log_ << "\r\033[K";
  log_ << text << '\n';
  if (mode_ == ProgressMode::Bar) draw_bar("");
  log_.flush();
  last_output_ = clock_();
}

void JobProgress::draw_bar(const std::string& status) {
  const std::int64_t filled = layers_ > 0 ? layers_done_ * 40 / layers_ : 0;
  log_ << "\r\033[K[" << std::string(static_cast<std::size_t>(filled), '#')
       << std::string(static_cast<std::size_t>(40 - filled), '.') << "] " << layers_done_ << '/'
       << layers_ << status << std::flush;
}

Heartbeat::Heartbeat(JobProgress& progress) : progress_(progress) {
  if (!progress_.enabled()) return;
  thread_ = std::jthread([this](const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, stop, std::chrono::seconds(1), [] { return false; })) return;
      lock.unlock();
      if (!stop.stop_requested()) progress_.tick();
    }
  });
}

Heartbeat::~Heartbeat() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

}  // namespace qshard

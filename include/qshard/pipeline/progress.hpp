#pragma once
// What rank 0 of qshard-quantize tells its user while the job runs: its own lines (the start-up,
// the header, one line per finished layer, the end) and, during a long activity, a status line at
// least every heartbeat interval (the activity, its count n/N and its rate). Layers are named by
// their 0-based index, as in the checkpoint and qshard-inspect: "layer 3 (4/30)" is the fourth of
// thirty. Lines mode never writes a carriage return or an escape sequence; the bar redraws one
// terminal line and is only for a terminal (a log file or a pipe gets lines).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

#include "qshard/pipeline/layer_quantizer.hpp"

namespace qshard {

enum class ProgressMode { None, Lines, Bar };

// --progress (lines, bar or none) with --quiet (none) and whether stdout is a terminal: a bar only
// when asked for and stdout is a terminal, lines otherwise.
ProgressMode progress_mode(const std::string& option, bool quiet, bool terminal);

// "12.3 s", "4.5 min", "2.1 h".
std::string format_duration(double seconds);

// "layer 3 (4/30)": the checkpoint's 0-based index, then the count from 1.
std::string layer_label(std::int64_t index, std::int64_t layers);

// What one finished layer reports.
struct LayerSummary {
  std::int64_t index = 0;
  double seconds = 0.0;  // the layer's wall time; timings.other(seconds) is in no stage
  LayerTimings timings;
  bool gptq = true;    // false for RTN: no gptq/rtn ratio and no factorisation
  double ratio = 1.0;  // the layer's GPTQ objective over round-to-nearest's
  double eta = 0.0;    // seconds left, from this run's mean layer time
};

// The layer line: label, seconds, gptq/rtn (GPTQ only), every stage's seconds (they and "other"
// add up to the layer's seconds), the work done ahead, and the time left.
std::string layer_line(const LayerSummary& summary, std::int64_t layers);

// The current activity of rank 0: what, and how far when counted.
struct Activity {
  std::string what;        // e.g. "forward for q_proj, k_proj, v_proj"
  std::string unit;        // what is counted ("units", "Hessians", "modules"); empty: not
  std::int64_t total = 0;  // how many of them
  std::int64_t done = 0;   // done so far
  std::int64_t first = 0;  // done when the activity began (for the rate)
  double started = 0.0;    // clock seconds when it began
};

// The status line of an activity at `now`, within layer `layer` (-1: start-up) that began at
// `layer_started`: e.g. "layer 3 (4/30) 42 s: forward for q_proj, k_proj, v_proj: units 5/16
// (0.31 units/s)".
std::string status_line(const Activity& activity, std::int64_t layer, std::int64_t layers,
                        double layer_started, double now);

// The job's progress on rank 0 (every other rank passes ProgressMode::None). Thread-safe: the
// job's thread reports activities and lines, the heartbeat thread calls tick().
class JobProgress final : public LayerObserver {
 public:
  using Clock = std::function<double()>;  // monotonic seconds

  JobProgress(std::ostream& log, ProgressMode mode, Clock clock, double heartbeat_seconds);
  // The steady clock; a heartbeat every 10 s (lines) or 1 s (the bar).
  JobProgress(std::ostream& log, ProgressMode mode);

  bool enabled() const { return mode_ != ProgressMode::None; }
  double heartbeat_seconds() const { return heartbeat_; }

  void set_layers(std::int64_t layers);  // the model's, once it is open
  void line(const std::string& text);    // a line of its own
  void start_layer(std::int64_t index);
  void layer_done(const LayerSummary& summary);
  void finish();  // clears the bar

  // LayerObserver: the activity now under way, and its count.
  void begin(std::string what, std::string unit, std::int64_t total, std::int64_t done) override;
  void advance(std::int64_t done) override;

  // Prints the status line when nothing was printed for a heartbeat interval (a line in lines
  // mode, the bar redrawn in bar mode); returns whether it printed.
  bool tick();

 private:
  void print_line(const std::string& text);  // with mutex_ held
  void draw_bar(const std::string& status);  // with mutex_ held

  std::ostream& log_;
  const ProgressMode mode_;
  const Clock clock_;
  const double heartbeat_;
  std::mutex mutex_;
  Activity activity_;
  std::int64_t layers_ = 0;
  std::int64_t layer_ = -1;  // the layer under way; -1 before the first
  std::int64_t layers_done_ = 0;
  double layer_started_ = 0.0;
  double last_output_ = 0.0;
};

// Calls progress.tick() about once a second on a thread of its own, from construction to
// destruction (nothing when the progress is disabled).
class Heartbeat {
 public:
  explicit Heartbeat(JobProgress& progress);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  JobProgress& progress_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::jthread thread_;
};

}  // namespace qshard

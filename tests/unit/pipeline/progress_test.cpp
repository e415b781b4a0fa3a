// qshard-quantize's progress: modes, layer labels, the layer line (its stages add up to the layer's
// time), status lines with counts and rates, and the heartbeat on an injected clock.
#include "qshard/pipeline/progress.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ProgressMode, BarOnlyWhenAskedForOnATerminal) {
  EXPECT_EQ(progress_mode("lines", false, true), ProgressMode::Lines);
  EXPECT_EQ(progress_mode("bar", false, true), ProgressMode::Bar);
  EXPECT_EQ(progress_mode("bar", false, false), ProgressMode::Lines);  // a log file or a pipe
  EXPECT_EQ(progress_mode("none", false, true), ProgressMode::None);
  EXPECT_EQ(progress_mode("bar", true, true), ProgressMode::None);  // --quiet
  EXPECT_THROW(progress_mode("fancy", false, true), Error);
}

TEST(ProgressText, LayersAreNamedByTheirCheckpointIndex) {
  EXPECT_EQ(layer_label(0, 30), "layer 0 (1/30)");
  EXPECT_EQ(layer_label(3, 30), "layer 3 (4/30)");
  EXPECT_EQ(format_duration(12.34), "12.3 s");
  EXPECT_EQ(format_duration(600), "10.0 min");
  EXPECT_EQ(format_duration(9000), "2.5 h");
}

LayerSummary summary(bool gptq) {
  LayerSummary s;
  s.index = 3;
  s.seconds = 10.0;
  s.gptq = gptq;
  s.ratio = 0.5;
  s.timings.load = 1.0;
  s.timings.forward = 2.0;
  s.timings.hessian = 1.5;
  s.timings.factor = 0.5;
  s.timings.solve = 3.0;
  s.timings.exchange = 1.0;
  s.timings.write = 0.25;
  s.timings.release = 0.5;
  return s;
}

TEST(ProgressText, LayerLineStagesAddUpToTheLayer) {
  const LayerSummary s = summary(true);
  EXPECT_DOUBLE_EQ(s.timings.total() + s.timings.other(s.seconds), s.seconds);
  const std::string line = layer_line(s, 30);
  EXPECT_TRUE(has(line, "layer 3 (4/30)")) << line;
  EXPECT_TRUE(has(line, "gptq/rtn 0.500")) << line;
  EXPECT_TRUE(has(line, "factor 0.50")) << line;
  EXPECT_TRUE(has(line, "other 0.25")) << line;
  EXPECT_FALSE(has(line, "\r") || has(line, "\033")) << line;
}

TEST(ProgressText, RoundToNearestHasNoRatioNorFactorisation) {
  const std::string line = layer_line(summary(false), 30);
  EXPECT_FALSE(has(line, "gptq/rtn")) << line;
  EXPECT_FALSE(has(line, "factor")) << line;
}

TEST(ProgressText, StatusLineCountsWithItsRate) {
  Activity a;
  a.what = "forward for q_proj, k_proj, v_proj";
  a.unit = "units";
  a.total = 16;
  a.first = 2;
  a.done = 6;
  a.started = 100.0;
  const std::string line = status_line(a, 3, 30, 90.0, 108.0);
  EXPECT_EQ(line,
            "  layer 3 (4/30) 18 s: forward for q_proj, k_proj, v_proj: units 6/16 (0.50 units/s), "
            "8 s in it");
  a.unit.clear();
  EXPECT_EQ(status_line(a, -1, 30, 90.0, 108.0), "  start-up 18 s: " + a.what + ", 8 s in it");
}

TEST(JobProgress, HeartbeatOnlyAfterAQuietInterval) {
  double now = 0.0;
  std::ostringstream log;
  JobProgress progress(
      log, ProgressMode::Lines, [&now] { return now; }, 10.0);
  progress.set_layers(30);
  progress.line("header");
  progress.start_layer(3);
  progress.begin("solve and exchange q_proj", "modules", 7, 2);
  now = 9.0;
  EXPECT_FALSE(progress.tick());
  progress.advance(4);
  now = 10.0;
  EXPECT_TRUE(progress.tick());
  EXPECT_FALSE(progress.tick());  // just printed
  now = 19.0;
  EXPECT_FALSE(progress.tick());
  now = 20.0;
  EXPECT_TRUE(progress.tick());
  EXPECT_EQ(log.str(),
            "header\n"
            "  layer 3 (4/30) 10 s: solve and exchange q_proj: modules 4/7 (0.20 modules/s), 10 s "
            "in it\n"
            "  layer 3 (4/30) 20 s: solve and exchange q_proj: modules 4/7 (0.10 modules/s), 20 s "
            "in it\n");
}

TEST(JobProgress, LinesResetTheHeartbeatAndNeverDrawABar) {
  double now = 0.0;
  std::ostringstream log;
  JobProgress progress(
      log, ProgressMode::Lines, [&now] { return now; }, 10.0);
  progress.set_layers(2);
  now = 9.0;
  progress.layer_done(summary(true));
  now = 15.0;
  EXPECT_FALSE(progress.tick());  // 6 s after the layer's line
  progress.finish();
  EXPECT_FALSE(has(log.str(), "\r") || has(log.str(), "\033") || has(log.str(), "[#")) << log.str();
}

TEST(JobProgress, NoneIsSilent) {
  double now = 0.0;
  std::ostringstream log;
  JobProgress progress(
      log, ProgressMode::None, [&now] { return now; }, 10.0);
  progress.line("header");
  progress.layer_done(summary(true));
  now = 100.0;
  EXPECT_FALSE(progress.tick());
  progress.finish();
  EXPECT_EQ(log.str(), "");
}

TEST(JobProgress, BarRedrawsOneLine) {
  double now = 0.0;
  std::ostringstream log;
  JobProgress progress(
      log, ProgressMode::Bar, [&now] { return now; }, 1.0);
  progress.set_layers(2);
  progress.start_layer(0);
  progress.layer_done(summary(true));
  EXPECT_TRUE(has(log.str(), "\r\033[K[####################....................] 1/2"))
      << log.str();
  progress.finish();
  EXPECT_TRUE(log.str().ends_with("\r\033[K"));
}

}  // namespace
}  // namespace qshard

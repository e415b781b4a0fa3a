// Sweep files: parsing, errors naming the file/line/key, row-major expansion, --index selection.
#include <gtest/gtest.h>

#include "qshard/core/error.hpp"
#include "qshard/sweep/sweep_spec.hpp"

namespace qshard {
namespace {

const std::string kSweep = R"(# a comment
[sweep]
base = base.ini          ; inline comment
out_dir = out/sweep
eval_tokens = eval.i32
eval_seq_len = 256
eval_rows = 32
[grid]
bits = 2,3,4,8
group_size = 32, -1
method = rtn,gptq
)";

std::string error_of(const std::string& text) {
  try {
    parse_sweep_text(text, "configs/s.ini");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SweepSpec, ParsesSweepSettingsAndGridInFileOrder) {
  const SweepSpec spec = parse_sweep_text(kSweep, "configs/sub/s.ini");
  EXPECT_EQ(spec.base,
            std::filesystem::path("configs/sub/base.ini"));  // relative to the sweep file
  EXPECT_EQ(spec.out_dir, std::filesystem::path("out/sweep"));
  EXPECT_EQ(spec.eval_tokens, "eval.i32");
  EXPECT_EQ(spec.eval_seq_len, 256);
  EXPECT_EQ(spec.eval_rows, 32);
  ASSERT_EQ(spec.grid.size(), 3u);
  EXPECT_EQ(spec.grid[0].name, "bits");
  EXPECT_EQ(spec.grid[1].values, (std::vector<std::string>{"32", "-1"}));
  EXPECT_EQ(spec.grid[2].name, "method");
  EXPECT_EQ(spec.point_count(), 16);
  EXPECT_EQ(parse_sweep_text(kSweep + "", "/abs/s.ini").base,
            std::filesystem::path("/abs/base.ini"));
}

TEST(SweepSpec, ExpandsRowMajorWithTheLastKeyFastest) {
  const SweepSpec spec = parse_sweep_text(kSweep, "s.ini");
  EXPECT_EQ(sweep_point(spec, 0).describe(), "bits=2 group_size=32 method=rtn");
  EXPECT_EQ(sweep_point(spec, 1).describe(), "bits=2 group_size=32 method=gptq");
  EXPECT_EQ(sweep_point(spec, 2).describe(), "bits=2 group_size=-1 method=rtn");
  EXPECT_EQ(sweep_point(spec, 4).describe(), "bits=3 group_size=32 method=rtn");
  EXPECT_EQ(sweep_point(spec, 11).describe(), "bits=4 group_size=-1 method=gptq");
  EXPECT_EQ(sweep_point(spec, 15).describe(), "bits=8 group_size=-1 method=gptq");
  // Point N is the mixed-radix number N: digits (4, 2, 2), the last the least significant.
  const std::vector<SweepPoint> points = all_points(spec);
  ASSERT_EQ(points.size(), 16u);
  for (std::int64_t n = 0; n < 16; ++n) {
    const SweepPoint& p = points[static_cast<std::size_t>(n)];
    EXPECT_EQ(p.index, n);
    EXPECT_EQ(p.settings[0].second, spec.grid[0].values[static_cast<std::size_t>(n / 4)]);
    EXPECT_EQ(p.settings[1].second, spec.grid[1].values[static_cast<std::size_t>(n / 2 % 2)]);
    EXPECT_EQ(p.settings[2].second, spec.grid[2].values[static_cast<std::size_t>(n % 2)]);
  }
  // Deterministic: the same file gives the same points.
  EXPECT_EQ(all_points(parse_sweep_text(kSweep, "s.ini"))[9].describe(), points[9].describe());
}

TEST(SweepSpec, IndexOutsideTheGridNamesTheFileAndRange) {
  const SweepSpec spec = parse_sweep_text(kSweep, "configs/s.ini");
  for (const std::int64_t bad : {std::int64_t{-1}, std::int64_t{16}}) {
    try {
      sweep_point(spec, bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("configs/s.ini"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("0..15"), std::string::npos) << e.what();
    }
  }
}

TEST(SweepSpec, ErrorsNameTheFileLineAndKey) {
  const std::string head = "[sweep]\nbase = b.ini\neval_tokens = e.i32\neval_seq_len = 8\n";
  EXPECT_NE(error_of(head + "[grid]\nbits = 4,4\n").find("listed twice"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nbits = 4,,8\n").find("configs/s.ini:6: key 'bits'"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nbits = 4,8,\n").find("empty value"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nbits =\n").find("key 'bits'"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nbits = 4\nbits = 8\n").find("given twice"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nout = a,b\n").find("cannot be swept"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\nresume = 0,1\n").find("cannot be swept"), std::string::npos);
  EXPECT_NE(error_of(head + "colour = red\n[grid]\nbits = 4\n")
                .find("key 'colour' is unknown in [sweep]"),
            std::string::npos);
  EXPECT_NE(error_of(head + "eval_rows = 0\n[grid]\nbits = 4\n").find("eval_rows"),
            std::string::npos);
  EXPECT_NE(error_of(head + "eval_seq_len = x\n[grid]\nbits = 4\n").find("given twice"),
            std::string::npos);
  EXPECT_NE(error_of("[sweep]\nbase = b.ini\neval_tokens = e\neval_seq_len = x\n[grid]\nbits = 4\n")
                .find("expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of("bits = 4\n").find("configs/s.ini:1: key 'bits' is outside a section"),
            std::string::npos);
  EXPECT_NE(error_of(head + "[points]\n").find("unknown section [points]"), std::string::npos);
  EXPECT_NE(error_of(head + "[grid]\njust text\n").find("expected key = value"), std::string::npos);
  EXPECT_NE(error_of(head).find("[grid] lists no keys"), std::string::npos);
  EXPECT_NE(
      error_of("[sweep]\neval_tokens = e\neval_seq_len = 8\n[grid]\nbits = 4\n").find("needs base"),
      std::string::npos);
  EXPECT_NE(
      error_of("[sweep]\nbase = b\neval_seq_len = 8\n[grid]\nbits = 4\n").find("needs eval_tokens"),
      std::string::npos);
  try {
    parse_sweep("/nonexistent/sweep.ini");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/sweep.ini"), std::string::npos);
  }
}

}  // namespace
}  // namespace qshard

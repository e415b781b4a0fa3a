// The report from recorded JSON lines: order, Markdown, CSV, gnuplot script, PNG and SVG.
#include <gtest/gtest.h>

#include <thread>

#include "qshard/core/error.hpp"
#include "qshard/sweep/report.hpp"
#include "qshard/sweep/results.hpp"
#include "sweep_test_support.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;

// Results lines as qshard-sweep --index writes them (group 32/-1 × rtn/gptq × bits 4/8), in the
// scrambled order of array tasks finishing, one point recorded twice (a requeued task).
const char* kLines[] = {
    R"({"index":3,"settings":{"group_size":-1,"method":"gptq","bits":8},"method":"gptq","bits":8,"group_size":-1,"act_order":false,"perplexity":51.7,"fp32_perplexity":51.05,"kl":0.018,"top1":0.91,"model_bytes":700000,"quantized_bytes":260000,"quantized_weights":229376,"bits_per_weight":9.07,"time_s":3.5,"eval_time_s":1.0,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"1111111111111111","model":"../shared/models/stories260k"})",
    R"({"index":0,"settings":{"group_size":32,"method":"rtn","bits":4},"method":"rtn","bits":4,"group_size":32,"act_order":false,"perplexity":270.9,"fp32_perplexity":51.05,"kl":2.18,"top1":0.269,"model_bytes":400000,"quantized_bytes":160000,"quantized_weights":229376,"bits_per_weight":5.5,"time_s":2.0,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"2222222222222222","model":"../shared/models/stories260k"})",
    R"({"index":1,"settings":{"group_size":32,"method":"gptq","bits":4},"method":"gptq","bits":4,"group_size":32,"act_order":false,"perplexity":183.2,"fp32_perplexity":51.05,"kl":1.68,"top1":0.343,"model_bytes":400000,"quantized_bytes":160000,"quantized_weights":229376,"bits_per_weight":5.5,"time_s":4.0,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"3333333333333333","model":"../shared/models/stories260k"})",
    R"({"index":2,"settings":{"group_size":-1,"method":"rtn","bits":4},"method":"rtn","bits":4,"group_size":-1,"act_order":false,"perplexity":900.0,"fp32_perplexity":51.05,"kl":3.0,"top1":0.15,"model_bytes":300000,"quantized_bytes":120000,"quantized_weights":229376,"bits_per_weight":4.2,"time_s":2.0,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"4444444444444444","model":"../shared/models/stories260k"})",
    R"({"index":1,"settings":{"group_size":32,"method":"gptq","bits":4},"method":"gptq","bits":4,"group_size":32,"act_order":false,"perplexity":183.2,"fp32_perplexity":51.05,"kl":1.68,"top1":0.343,"model_bytes":400000,"quantized_bytes":160000,"quantized_weights":229376,"bits_per_weight":5.5,"time_s":4.5,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"3333333333333333","model":"../shared/models/stories260k"})",
    R"({"index":4,"settings":{"group_size":32,"method":"rtn","bits":8},"method":"rtn","bits":8,"group_size":32,"act_order":false,"perplexity":51.99,"fp32_perplexity":51.05,"kl":0.025,"top1":0.89,"model_bytes":800000,"quantized_bytes":300000,"quantized_weights":229376,"bits_per_weight":10.5,"time_s":2.0,"ranks":2,"seed":0,"commit":"abc","calibration_hash":"00ff","checkpoint_hash":"5555555555555555","model":"../shared/models/stories260k"})",
};

class SweepReport : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (const char* line : kLines) text += std::string(line) + "\n";
    test::write_text(dir_ / "results.jsonl", text + "\n");  // a blank line is allowed
  }
  test::ScratchDir dir_{"qshard-sweep-report"};
};

std::vector<std::int64_t> indices(const std::vector<nlohmann::json>& records) {
  std::vector<std::int64_t> out;
  for (const auto& r : records) out.push_back(r.at("index").get<std::int64_t>());
  return out;
}

TEST_F(SweepReport, SortsByGroupSizeMethodBitsAndKeepsOneLinePerPoint) {
  const auto records = read_result_lines(dir_ / "results.jsonl");
  ASSERT_EQ(records.size(), 6u);
  const auto sorted = sorted_results(records);
  // group 32 (rtn 4, 8; gptq 4), then group -1 (rtn 4; gptq 8); the duplicate of point 1 once.
  EXPECT_EQ(indices(sorted), (std::vector<std::int64_t>{0, 4, 1, 2, 3}));
  EXPECT_DOUBLE_EQ(sorted[2].at("time_s").get<double>(), 4.5);  // the last line of a point wins
}

TEST_F(SweepReport, MarkdownAndCsvShowEveryPointWithItsHash) {
  const auto sorted = sorted_results(read_result_lines(dir_ / "results.jsonl"));
  const std::string md = markdown_table(sorted);
  EXPECT_NE(md.find("| point | group | method | bits | bits/weight |"), std::string::npos) << md;
  EXPECT_NE(
      md.find(
          "| 1 | 32 | GPTQ | 4 | 5.500 | 400000 | 183.200 | 51.050 | 1.68000 | 34.30 % | 4.5 | 2 | "
          "`3333333333333333` |"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("| 2 | per row | RTN | 4 |"), std::string::npos) << md;
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 2 + 5);
  const std::string csv = csv_table(sorted);
  EXPECT_EQ(
      csv.substr(0, csv.find('\n')),
      "index,group_size,method,bits,bits_per_weight,model_bytes,quantized_bytes,quantized_weights,"
      "perplexity,fp32_perplexity,kl,top1,time_s,eval_time_s,ranks,seed,calibration_hash,"
      "checkpoint_hash,commit");
  EXPECT_NE(csv.find("\n0,32,rtn,4,5.5,400000,160000,229376,270.9,51.05,2.18,0.269,2.0,,2,0,00ff,"
                     "2222222222222222,abc\n"),
            std::string::npos)
      << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 5);
}

TEST_F(SweepReport, ExtraGridKeysGetTheirOwnColumns) {
  auto records = read_result_lines(dir_ / "results.jsonl");
  for (auto& r : records) r["settings"]["act_order"] = r.at("index").get<int>() % 2;
  const auto sorted = sorted_results(records);
  EXPECT_NE(markdown_table(sorted).find("| bits | act_order | bits/weight |"), std::string::npos);
  EXPECT_NE(csv_table(sorted).find("index,group_size,method,bits,act_order,"), std::string::npos);
  EXPECT_NE(gnuplot_script(sorted, "p.png", "p.svg").find("'group 32, act_order=1 GPTQ'"),
            std::string::npos);
}

TEST_F(SweepReport, PlotHasOneLinePerGroupSizeRtnDashedGptqSolid) {
  const auto sorted = sorted_results(read_result_lines(dir_ / "results.jsonl"));
  const std::string script = gnuplot_script(sorted, "out/r.png", "out/r.svg");
  // Series in report order: g32 RTN, g32 GPTQ, per-row RTN, per-row GPTQ; same colour per group.
  EXPECT_NE(script.find("$s0 << EOD\n5.500000 270.9 \"w4 g32\"\n10.500000 51.99 \"w8 g32\"\nEOD"),
            std::string::npos)
      << script;
  // Each point labelled with its nominal setting, in its series' colour.
  EXPECT_NE(script.find("$s0 using 1:2:3 with labels offset 0,0.9 font ',8' tc rgb '#1f77b4'"),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("\"w4 row\""), std::string::npos);
  // The y range fits the data (51.05 .. 900) with margins; the FP value is in its title.
  EXPECT_NE(script.find("set yrange [44.3913:1440]"), std::string::npos) << script;
  EXPECT_NE(script.find("title 'floating point: 51.05'"), std::string::npos);
  EXPECT_NE(
      script.find(
          "$s1 using 1:2 with linespoints lw 2 lc rgb '#1f77b4' dt 1 pt 7 title 'group 32 GPTQ'"),
      std::string::npos)
      << script;
  EXPECT_NE(
      script.find(
          "$s0 using 1:2 with linespoints lw 2 lc rgb '#1f77b4' dt 2 pt 6 title 'group 32 RTN'"),
      std::string::npos);
  EXPECT_NE(script.find("lc rgb '#d62728' dt 2 pt 6 title 'group per row RTN' noenhanced"),
            std::string::npos);  // titles as written: act_order's underscore is no subscript
  EXPECT_NE(script.find("51.05 with lines"), std::string::npos);
}

TEST_F(SweepReport, OneGroupSizeIsColouredByMethod) {
  auto records = read_result_lines(dir_ / "results.jsonl");
  std::erase_if(records, [](const auto& r) { return r.at("group_size").template get<int>() < 0; });
  const std::string script = gnuplot_script(sorted_results(records), "p.png", "p.svg");
  EXPECT_NE(script.find("lc rgb '#d62728' dt 2 pt 6 title 'group 32 RTN'"), std::string::npos)
      << script;
  EXPECT_NE(script.find("lc rgb '#1f77b4' dt 1 pt 7 title 'group 32 GPTQ'"), std::string::npos)
      << script;
  EXPECT_NE(script.find("set output 'p.png'"), std::string::npos) << script;
  EXPECT_NE(script.find("set output 'p.svg'"), std::string::npos) << script;
  EXPECT_NE(script.find("stories260k"), std::string::npos) << script;
}

TEST_F(SweepReport, WritesMarkdownCsvPngAndSvg) {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)";
  }
  const ReportFiles files = write_report(dir_ / "results.jsonl", dir_ / "report");
  for (const fs::path& f : {files.markdown, files.csv, files.script, files.png, files.svg}) {
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 100u) << f;
  }
  EXPECT_EQ(test::read_text(files.png).substr(1, 3), "PNG");
  EXPECT_NE(test::read_text(files.svg).find("<svg"), std::string::npos);
  EXPECT_NE(test::read_text(files.markdown).find("![perplexity vs bits per weight](report.png)"),
            std::string::npos);
}

TEST_F(SweepReport, MalformedLinesAreRejectedWithFileAndLine) {
  test::write_text(dir_ / "bad.jsonl", std::string(kLines[0]) + "\n{\"index\": 2,\n");
  try {
    read_result_lines(dir_ / "bad.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  test::write_text(dir_ / "missing.jsonl", R"({"index":7,"settings":{}})"
                                           "\n");
  EXPECT_THROW(write_report(dir_ / "missing.jsonl", dir_ / "r", false), Error);
}

TEST(SweepResults, ConcurrentAppendsNeverInterleave) {
  test::ScratchDir dir("qshard-sweep-append");
  const fs::path results = dir / "results.jsonl";
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 50; ++i) {
        append_result_line(results, {{"index", w * 1000 + i}, {"padding", std::string(5000, 'x')}});
      }
    });
  }
  for (auto& t : writers) t.join();
  const auto lines = read_result_lines(results);
  EXPECT_EQ(lines.size(), 200u);
}

}  // namespace
}  // namespace qshard

// docs/CHECKPOINT.md against a real checkpoint: every object it lists exists, and the standard
// HDF5 tools read the file.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <vector>

#include "qshard/io/hdf5.hpp"
#include "support.hpp"

namespace qshard::test {
namespace {

TEST(CheckpointSchema, DocumentMatchesFile) {
  TempDir dir("qshard-schema");
  // A dense model and the families with tensors of their own (Qwen3's q/k norms, Qwen2-MoE's
  // router, shared-expert gate and experts) and a layer-group job (its blocks): every row of the
  // document is in one of them.
  std::vector<h5::File> files;
  for (const std::string preset :
       {"tiny", "qwen3-tiny", "qwen2-moe-tiny", "tiny --layer_groups 2"}) {
    const bool grouped = preset.find("layer_groups") != std::string::npos;
    const std::string out = dir / (grouped ? "grouped.h5" : preset + ".h5");
    const RunResult r =
        run(quantize_command(grouped ? 2 : 1, "--model synthetic:" + preset +
                                                  " --samples 4 --seq_len 16 --backend cpu "
                                                  "--quiet --out " +
                                                  out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    files.push_back(h5::File::open_read(out));
  }
  const std::string out = dir / "tiny.h5";

  std::ifstream doc(std::string(QSHARD_SOURCE_DIR) + "/docs/CHECKPOINT.md");
  ASSERT_TRUE(doc.good());
  const std::regex row(R"(^\| `([^`]+)` \| `([^`]+)` \|)");
  int checked = 0;
  for (std::string line; std::getline(doc, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    std::string object = std::regex_replace(m[1].str(), std::regex("NNNNN"), "00000");
    object = std::regex_replace(object, std::regex("MODULE"), "q_proj");
    const std::string name = m[2].str();
    bool found = false;
    for (const h5::File& file : files) {
      if (object != "/" && !file.root().contains(object.substr(1))) continue;
      const h5::Group group =
          object == "/" ? file.root() : file.root().open_group(object.substr(1));
      found = found || (name[0] == '@' ? group.has_attr(name.substr(1)) : group.contains(name));
    }
    EXPECT_TRUE(found) << object << " " << name;
    ++checked;
  }
  EXPECT_GT(checked, 30);

  const RunResult ls = run("h5ls -r " + out);
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find("/layers/00000/q_proj/qweight"), std::string::npos) << ls.output;
  const RunResult dump = run("h5dump -H " + out);
  EXPECT_EQ(dump.exit_code, 0);
  EXPECT_NE(dump.output.find("calibration_hash"), std::string::npos);
}

}  // namespace
}  // namespace qshard::test

// Writes the HDF5 seeds of the fuzz corpus (the text seeds are plain files): a tiny checkpoint as
// the export tests write it (2 layers, hidden 64). Not run by CI (the
// corpus is checked in); run it when the checkpoint schema changes:
//   build-sanitize/tests/fuzz/qshard_fuzz_make_seeds tests/fuzz/corpus
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "export_test_support.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  qshard::require(out.good(), "cannot write ", path);
}

// The checkpoint is repacked with contiguous datasets (h5repack, from hdf5-tools): the chunk
// indexes and Fletcher32 checksums of the chunked layout would make it 240 KB, and most mutations
// of chunked data fail the checksum before qshard sees the values. Both layouts read the same.
void write_checkpoint_seeds(const fs::path& corpus, const fs::path& scratch) {
  qshard::test::CheckpointSpec spec;
  spec.intermediate = 32;
  spec.bias = false;
  spec.act_order = true;
  spec.dtype = qshard::DType::BF16;
  spec.float_modules = {qshard::Linear::Down};
  const fs::path chunked = scratch / "chunked.h5";
  const fs::path contiguous = scratch / "contiguous.h5";
  qshard::test::write_random_checkpoint(chunked, spec);
  const std::string repack =
      "h5repack -l CONTI '" + chunked.string() + "' '" + contiguous.string() + "'";
  qshard::require(std::system(repack.c_str()) == 0, "failed: ", repack);
  const std::vector<char> bytes = read_bytes(contiguous);
  write_bytes(corpus / "checkpoint" / "valid-tiny.h5", bytes);
  // Malformed: the first 4 KB (superblock and root group, the rest missing), and not HDF5.
  write_bytes(corpus / "checkpoint" / "bad-truncated.h5",
              std::vector<char>(bytes.begin(), bytes.begin() + 4096));
  const std::string text = "not an HDF5 file\n";
  write_bytes(corpus / "checkpoint" / "bad-not-hdf5.h5", {text.begin(), text.end()});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path corpus = argv[1];
    const qshard::test::TempDir scratch;
    write_checkpoint_seeds(corpus, scratch.path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}

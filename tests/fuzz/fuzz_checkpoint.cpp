// libFuzzer target: the HDF5 checkpoint reader (src/io/checkpoint) on the input written as a file:
// what qshard-inspect, qshard-eval and qshard-export read (header, layers, model tensors, summary,
// hash). HDF5 itself parses the file; the target is what qshard does with what HDF5 returns.
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>

#include "fuzz_support.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/hdf5.hpp"

namespace {

constexpr std::int64_t kMaxLayers = 8;  // enough for the seeds; bounds the work per input

void read_everything(const std::filesystem::path& path) {
  const qshard::Checkpoint checkpoint(path);
  for (std::int64_t l = 0; l < checkpoint.layer_count() && l < kMaxLayers; ++l) {
    qshard::fuzz::refused_or_parsed([&] { (void)checkpoint.layer(l); });
  }
  for (const std::string_view name :
       {qshard::kEmbedName, qshard::kFinalNormName, qshard::kLmHeadName}) {
    qshard::fuzz::refused_or_parsed([&] {
      if (checkpoint.has_model_tensor(std::string(name)))
        (void)checkpoint.model_tensor(std::string(name));
    });
  }
  if (checkpoint.layer_count() <= kMaxLayers) {
    std::ostringstream summary;
    qshard::fuzz::refused_or_parsed([&] { qshard::print_checkpoint_summary(checkpoint, summary); });
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  qshard::h5::silence_library_errors();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, const std::size_t size) {
  const qshard::fuzz::InputFile file(data, size, ".h5");
  qshard::fuzz::refused_or_parsed([&] { read_everything(file.path()); });
  qshard::fuzz::refused_or_parsed([&] {
    static volatile std::uint64_t sink;
    sink = qshard::hash_quantized_tensors(file.path());
  });
  return 0;
}

#pragma once
// Reading a whole (small) text file: configs, indexes, job state.
#include <filesystem>
#include <string>

namespace qshard {

// The file's bytes; throws qshard::Error naming the path when it cannot be opened or read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace qshard

#include "qshard/core/text_file.hpp"

#include <fstream>
#include <sstream>

#include "qshard/core/error.hpp"

namespace qshard {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), "cannot open ", path);
  std::ostringstream text;
  text << in.rdbuf();
  require(!in.bad(), "cannot read ", path);
  return text.str();
}

}  // namespace qshard

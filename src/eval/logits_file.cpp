// LogitsFile: raw float32 little-endian, complete under its name or absent.
#include "qshard/eval/logits_file.hpp"

#include <bit>
#include <cstring>
#include <system_error>
#include <vector>

#include "qshard/core/error.hpp"

namespace qshard {

LogitsFile::LogitsFile(std::filesystem::path path)
    : path_(std::move(path)), temporary_(path_.string() + ".tmp") {
  out_.open(temporary_, std::ios::binary | std::ios::trunc);
  require(out_.good(), "cannot write logits file ", temporary_);
}

LogitsFile::~LogitsFile() {
  if (committed_) return;
  out_.close();
  std::error_code ignored;
  std::filesystem::remove(temporary_, ignored);
}

void LogitsFile::append(const MatrixF& logits) {
  require(vocab_ < 0 || logits.cols() == vocab_, "logits file ", path_, ": a batch of ",
          logits.cols(), " columns after batches of ", vocab_);
  vocab_ = logits.cols();
  if constexpr (std::endian::native == std::endian::little) {
    out_.write(reinterpret_cast<const char*>(logits.data()),
               static_cast<std::streamsize>(logits.size() * sizeof(float)));
  } else {
    std::vector<std::uint32_t> words(logits.size());
    std::memcpy(words.data(), logits.data(), logits.size() * sizeof(float));
    for (std::uint32_t& w : words)
      w = (w >> 24) | ((w >> 8) & 0xff00u) | ((w << 8) & 0xff0000u) | (w << 24);
    out_.write(reinterpret_cast<const char*>(words.data()),
               static_cast<std::streamsize>(words.size() * sizeof(std::uint32_t)));
  }
  require(out_.good(), "cannot write logits file ", temporary_);
  rows_ += logits.rows();
}

void LogitsFile::commit() {
  out_.close();
  require(!out_.fail(), "cannot write logits file ", temporary_);
  std::error_code ec;
  std::filesystem::rename(temporary_, path_, ec);
  require(!ec, "cannot rename ", temporary_, " to ", path_, ": ", ec.message());
  committed_ = true;
}

}  // namespace qshard

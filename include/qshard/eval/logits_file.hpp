#pragma once
// Raw little-endian float32 logits [rows * positions, vocab] (qshard-eval --logits-out), written
// as FILE.tmp and renamed to FILE by commit(); removed when never committed.
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "qshard/core/matrix.hpp"

namespace qshard {

class LogitsFile {
 public:
  explicit LogitsFile(std::filesystem::path path);
  ~LogitsFile();
  LogitsFile(const LogitsFile&) = delete;
  LogitsFile& operator=(const LogitsFile&) = delete;

  // Appends [n, vocab] logits; every call must have the same vocabulary.
  void append(const MatrixF& logits);
  void commit();
  std::int64_t rows() const { return rows_; }
  std::int64_t vocab() const { return vocab_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  std::ofstream out_;
  std::int64_t rows_ = 0;
  std::int64_t vocab_ = -1;
  bool committed_ = false;
};

}  // namespace qshard

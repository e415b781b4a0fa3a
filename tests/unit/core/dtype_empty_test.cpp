// Found by the sanitizer build (UBSan): converting an empty tensor passed its null data pointer
// to memcpy (undefined even for 0 bytes; SafetensorsRoundTrip's empty [0, 4] tensor did so).
#include <gtest/gtest.h>

#include "qshard/core/dtype.hpp"

namespace qshard {
namespace {

TEST(DTypeEmpty, ConvertingNoValuesTouchesNoPointer) {
  for (const DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    convert_to_f32(nullptr, dtype, 0, nullptr);
    convert_from_f32(nullptr, 0, dtype, nullptr);
  }
  SUCCEED();  // UBSan (scripts/sanitize.sh) aborts here without the early return
}

}  // namespace
}  // namespace qshard

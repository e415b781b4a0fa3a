#pragma once
// Packing b-bit codes into 32-bit words in the layout of GPTQ checkpoints (docs/FORMATS.md).
#include <cstdint>
#include <vector>

#include "qshard/core/matrix.hpp"

namespace qshard {

// 32-bit words that hold `values` codes of `bits` bits each (the last one zero-padded).
std::int64_t packed_words(std::int64_t values, int bits);

// qweight: codes [rows=out, cols=in] packed along the input dimension, 32/b... values per word,
// as GPTQ checkpoints store it: qweight[in_word, out] (int32). The bit stream of a column of
// `in` codes is laid out little-end first: value k occupies bits [k*b, k*b + b) of the stream,
// word w holding stream bits [32w, 32w+32); 3-bit values straddle words. The last word is padded
// with zero bits when in*b is not a multiple of 32.
Matrix<std::int32_t> pack_qweight(const Matrix<std::uint8_t>& codes, int bits);
Matrix<std::uint8_t> unpack_qweight(const Matrix<std::int32_t>& packed, int bits, std::int64_t rows,
                                    std::int64_t cols);

// qzeros: zeros [out, groups] transposed to [groups, out] and packed along out: [groups,
// out_words]. `offset` is subtracted before packing (1 for the GPTQ v1 format's zero - 1
// convention).
Matrix<std::int32_t> pack_qzeros(const Matrix<std::int32_t>& zeros, int bits, int offset = 0);
Matrix<std::int32_t> unpack_qzeros(const Matrix<std::int32_t>& packed, int bits, std::int64_t rows,
                                   std::int64_t groups, int offset = 0);

// Scales [rows, groups] as fp16 bit patterns transposed to [groups, rows] (the GPTQ layout).
Matrix<std::uint16_t> pack_scales_f16(const MatrixF& scales);
MatrixF unpack_scales_f16(const Matrix<std::uint16_t>& packed);

}  // namespace qshard

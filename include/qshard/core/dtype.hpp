#pragma once
// Element types of checkpoint tensors and exact conversions between the 16-bit floats and fp32.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qshard {

enum class DType : std::uint8_t { F32, F16, BF16, F64, I32, I64, U8, I8 };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8".
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype name; throws qshard::Error naming the unsupported type.
DType parse_dtype(std::string_view name);
// Parses a config.json torch_dtype ("float32", "bfloat16", "float16").
DType parse_torch_dtype(std::string_view name);
// The config.json spelling: "float32", "float16" or "bfloat16" (other types: "float32").
std::string_view torch_dtype_name(DType dtype);
bool is_float(DType dtype);

// IEEE binary16 and bfloat16 <-> binary32. Widening is exact; narrowing rounds to nearest,
// ties to even, keeps infinities, keeps NaN a (quiet) NaN and produces subnormals where due.
float f16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_f16(float value);
float bf16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_bf16(float value);

// Rounds through fp16 and back (what storing a value as fp16 does to it).
inline float round_to_f16(float value) { return f16_to_f32(f32_to_f16(value)); }

// Converts `count` elements of `dtype` at `src` to fp32 (F32, F16, BF16, F64, I32 accepted).
void convert_to_f32(const void* src, DType dtype, std::size_t count, float* dst);
// Converts `count` fp32 values to `dtype` (F32, F16, BF16) at `dst`.
void convert_from_f32(const float* src, std::size_t count, DType dtype, void* dst);

}  // namespace qshard

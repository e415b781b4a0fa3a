#include "qshard/core/dtype.hpp"

#include <bit>
#include <cstring>

#include "qshard/core/error.hpp"
#include "qshard/core/parallel.hpp"

namespace qshard {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::U8:
    case DType::I8:
      return 1;
  }
  throw Error("dtype_size: invalid dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
    case DType::I8:
      return "I8";
  }
  throw Error("dtype_name: invalid dtype");
}

DType parse_dtype(std::string_view name) {
  for (const DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64,
                        DType::U8, DType::I8}) {
    if (dtype_name(d) == name) return d;
  }
  throw Error(
      str("unsupported dtype '", name, "' (supported: F32, F16, BF16, F64, I32, I64, U8, I8)"));
}

DType parse_torch_dtype(std::string_view name) {
  if (name == "float32" || name == "float") return DType::F32;
  if (name == "float16" || name == "half") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  throw Error(str("unsupported torch_dtype '", name, "' (supported: float32, float16, bfloat16)"));
}

std::string_view torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

bool is_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F64;
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {  // Inf or NaN: keep the payload, force quiet.
    bits = sign | 0x7f800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0u);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // Subnormal half: normalise into a binary32 normal.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    bits = sign | (static_cast<std::uint32_t>(113 - shift) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t f32_to_f16(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    if (abs == 0x7f800000u) return sign | 0x7c00u;
    return sign | 0x7e00u | static_cast<std::uint16_t>((abs >> 13) & 0x3ffu);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to Inf
  const int exponent = static_cast<int>(abs >> 23) - 127;
  if (exponent >= -14) {  // normal half
    const std::uint32_t mantissa = abs & 0x7fffffu;
    std::uint32_t half = (static_cast<std::uint32_t>(exponent + 15) << 10) | (mantissa >> 13);
    const std::uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // carries into exponent
    return sign | static_cast<std::uint16_t>(half);
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal: rounds to zero
  // Subnormal half: value = m * 2^-24 with the implicit bit made explicit.
  const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
  // The 24-bit significand times 2^(exponent-23), in units of 2^-24, drops (-exponent-1) bits.
  const int drop = -exponent - 1;
  std::uint32_t half = mantissa >> drop;
  const std::uint32_t rest = mantissa & ((1u << drop) - 1u);
  const std::uint32_t halfway = 1u << (drop - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
  return sign | static_cast<std::uint16_t>(half);
}

float bf16_to_f32(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

std::uint16_t f32_to_bf16(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep sign and top payload, force quiet
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  }
  const std::uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<std::uint16_t>((bits + 0x7fffu + lsb) >> 16);  // ties to even; Inf stays Inf
}

namespace {

// Converts `count` values on one thread.
void convert_range_to_f32(const void* src, DType dtype, std::size_t count, float* dst);

}  // namespace

// Large tensors (a model's weights read from memory-mapped files: page faults and conversion)
// are converted in chunks on the hardware threads; the values do not depend on the split.
void convert_to_f32(const void* src, DType dtype, std::size_t count, float* dst) {
  constexpr std::size_t kChunk = std::size_t{1} << 22;
  if (count < 2 * kChunk) return convert_range_to_f32(src, dtype, count, dst);
  const std::size_t size = dtype_size(dtype), chunks = (count + kChunk - 1) / kChunk;
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 32u));
  parallel_for(chunks, threads, [&](std::size_t c) {
    const std::size_t begin = c * kChunk, n = std::min(kChunk, count - begin);
    convert_range_to_f32(static_cast<const std::byte*>(src) + begin * size, dtype, n, dst + begin);
  });
}

namespace {

void convert_range_to_f32(const void* src, DType dtype, std::size_t count, float* dst) {
  if (count == 0) return;  // an empty tensor's pointers may be null: memcpy must not see them
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::F16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      const auto* s = static_cast<const double*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::I32: {
      const auto* s = static_cast<const std::int32_t*>(src);
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    default:
      throw Error(str("cannot convert dtype ", dtype_name(dtype), " to F32"));
  }
}

}  // namespace

void convert_from_f32(const float* src, std::size_t count, DType dtype, void* dst) {
  if (count == 0) return;  // an empty tensor's pointers may be null: memcpy must not see them
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::F16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < count; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < count; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    default:
      throw Error(str("cannot convert F32 to dtype ", dtype_name(dtype)));
  }
}

}  // namespace qshard

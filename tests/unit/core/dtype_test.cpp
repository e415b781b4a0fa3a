// Exhaustive tests of the fp16 / bf16 <-> fp32 conversions against independent references.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "qshard/core/dtype.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace {

constexpr int kPatterns = 65536;

// IEEE binary16 decoded with arithmetic only: (-1)^s * 2^(e-15) * (1 + m/1024), or subnormal.
double decode_f16(const int bits) {
  const int sign = bits / 32768;
  const int exponent = (bits / 1024) % 32;
  const int mantissa = bits % 1024;
  const double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -24)
                           : exponent == 31
                               ? (mantissa == 0 ? std::numeric_limits<double>::infinity()
                                                : std::numeric_limits<double>::quiet_NaN())
                               : std::ldexp(1024.0 + mantissa, exponent - 25);
  return sign ? -magnitude : magnitude;
}

// bfloat16 decoded the same way: 8 exponent bits (bias 127), 7 mantissa bits.
double decode_bf16(const int bits) {
  const int sign = bits / 32768;
  const int exponent = (bits / 128) % 256;
  const int mantissa = bits % 128;
  const double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -133)
                           : exponent == 255
                               ? (mantissa == 0 ? std::numeric_limits<double>::infinity()
                                                : std::numeric_limits<double>::quiet_NaN())
                               : std::ldexp(128.0 + mantissa, exponent - 134);
  return sign ? -magnitude : magnitude;
}

// The compiler's binary16: _Float16 (GCC 12, clang 15), or clang 14's storage-only __fp16 on
// x86-64 (the sanitizer build), whose conversions come from compiler-rt. Copied bytewise: a
// function cannot return __fp16.
#if defined(__FLT16_MANT_DIG__)
using CompilerF16 = _Float16;
#else
using CompilerF16 = __fp16;
#endif
static_assert(sizeof(CompilerF16) == sizeof(std::uint16_t));

float compiler_f16_to_f32(const std::uint16_t bits) {
  CompilerF16 half;
  std::memcpy(&half, &bits, sizeof half);
  return static_cast<float>(half);
}

std::uint16_t compiler_f32_to_f16(const float value) {
  const CompilerF16 half = static_cast<CompilerF16>(value);
  std::uint16_t bits;
  std::memcpy(&bits, &half, sizeof bits);
  return bits;
}

bool is_f16_nan(const std::uint16_t bits) { return (bits & 0x7fff) > 0x7c00; }
bool is_bf16_nan(const std::uint16_t bits) { return (bits & 0x7fff) > 0x7f80; }

TEST(DTypeF16, WideningMatchesCompilerAndArithmeticDecoder) {
  for (int i = 0; i < kPatterns; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    const float ours = f16_to_f32(bits);
    const double reference = decode_f16(i);
    if (std::isnan(reference)) {
      EXPECT_TRUE(std::isnan(ours)) << std::hex << i;
      EXPECT_TRUE(std::isnan(compiler_f16_to_f32(bits))) << std::hex << i;
      EXPECT_EQ(std::signbit(ours), i >= 0x8000) << std::hex << i;
      continue;
    }
    EXPECT_EQ(static_cast<double>(ours), reference) << std::hex << i;
    EXPECT_EQ(std::bit_cast<std::uint32_t>(ours),
              std::bit_cast<std::uint32_t>(compiler_f16_to_f32(bits)))
        << std::hex << i;
    EXPECT_EQ(std::signbit(ours), i >= 0x8000) << std::hex << i;  // signed zeros included
  }
}

TEST(DTypeBF16, WideningMatchesArithmeticDecoder) {
  for (int i = 0; i < kPatterns; ++i) {
    const float ours = bf16_to_f32(static_cast<std::uint16_t>(i));
    const double reference = decode_bf16(i);
    if (std::isnan(reference)) {
      EXPECT_TRUE(std::isnan(ours)) << std::hex << i;
      continue;
    }
    EXPECT_EQ(static_cast<double>(ours), reference) << std::hex << i;
    EXPECT_EQ(std::signbit(ours), i >= 0x8000) << std::hex << i;
  }
}

TEST(DTypeF16, RoundTripIsIdentityAndNanStaysNan) {
  for (int i = 0; i < kPatterns; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    const std::uint16_t back = f32_to_f16(f16_to_f32(bits));
    if (is_f16_nan(bits)) {
      EXPECT_TRUE(is_f16_nan(back)) << std::hex << i;
      EXPECT_EQ(back & 0x8000, bits & 0x8000) << std::hex << i;
    } else {
      EXPECT_EQ(back, bits) << std::hex << i;
    }
  }
}

TEST(DTypeBF16, RoundTripIsIdentityAndNanStaysNan) {
  for (int i = 0; i < kPatterns; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    const std::uint16_t back = f32_to_bf16(bf16_to_f32(bits));
    if (is_bf16_nan(bits)) {
      EXPECT_TRUE(is_bf16_nan(back)) << std::hex << i;
      EXPECT_EQ(back & 0x8000, bits & 0x8000) << std::hex << i;
    } else {
      EXPECT_EQ(back, bits) << std::hex << i;
    }
  }
}

// For adjacent finite values a < b (same sign, |b| = |a| + 1 ulp) the exact midpoint rounds to
// the one with an even mantissa, and one fp32 ulp either side rounds to the nearer one.
template <typename Widen, typename Narrow>
void check_midpoints(const int largest_finite, Widen widen, Narrow narrow) {
  for (const int sign : {0, 0x8000}) {
    for (int m = 0; m < largest_finite; ++m) {
      const auto lo = static_cast<std::uint16_t>(sign | m);
      const auto hi = static_cast<std::uint16_t>(sign | (m + 1));
      const float a = widen(lo), b = widen(hi);
      const float mid = static_cast<float>((static_cast<double>(a) + b) / 2);
      ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(a) + b) / 2) << "not exact";
      const std::uint16_t even = (m % 2 == 0) ? lo : hi;
      ASSERT_EQ(narrow(mid), even) << std::hex << "midpoint of " << lo << " and " << hi;
      ASSERT_EQ(narrow(std::nextafter(mid, a)), lo) << std::hex << "below midpoint of " << lo;
      ASSERT_EQ(narrow(std::nextafter(mid, b)), hi) << std::hex << "above midpoint of " << lo;
      ASSERT_EQ(narrow(a), lo);
      ASSERT_EQ(narrow(b), hi);
    }
  }
}

TEST(DTypeF16, MidpointsRoundToEvenAndNeighboursToNearest) {
  check_midpoints(0x7bff, f16_to_f32, f32_to_f16);
}

TEST(DTypeBF16, MidpointsRoundToEvenAndNeighboursToNearest) {
  check_midpoints(0x7f7f, bf16_to_f32, f32_to_bf16);
}

TEST(DTypeF16, OverflowThresholdIs65520) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-65520.0f), 0xfc00);
  EXPECT_EQ(f32_to_f16(-std::nextafter(65520.0f, 0.0f)), 0xfbff);
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
}

TEST(DTypeBF16, OverflowAtHalfUlpAboveTheLargestFinite) {
  const float largest = bf16_to_f32(0x7f7f);
  const float threshold = std::bit_cast<float>(0x7f7f8000u);  // midpoint to 2^128
  EXPECT_EQ(f32_to_bf16(largest), 0x7f7f);
  EXPECT_EQ(f32_to_bf16(std::nextafter(threshold, 0.0f)), 0x7f7f);
  EXPECT_EQ(f32_to_bf16(threshold), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-threshold), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(DTypeF16, SubnormalsAndSignedZeros) {
  const float smallest = std::ldexp(1.0f, -24);
  EXPECT_EQ(f32_to_f16(smallest), 0x0001);
  EXPECT_EQ(f32_to_f16(-smallest), 0x8001);
  EXPECT_EQ(f32_to_f16(smallest / 2), 0x0000);  // tie with zero: to even
  EXPECT_EQ(f32_to_f16(std::nextafter(smallest / 2, 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(-smallest / 2), 0x8000);
  EXPECT_EQ(f32_to_f16(smallest * 1.5f), 0x0002);           // tie between 1 and 2: to even
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(f16_to_f32(0x0001), smallest);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x8000), 0.0f);
}

TEST(DTypeBF16, SubnormalsAndSignedZeros) {
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00010000u)), 0x0001);  // bf16 subnormal
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00008000u)), 0x0000);  // tie: to even
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00008001u)), 0x0001);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x80018000u)), 0x8002);  // tie: to even
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_TRUE(std::signbit(bf16_to_f32(0x8000)));
}

TEST(DTypeNan, NarrowingKeepsNanQuiet) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float signalling = std::bit_cast<float>(0x7f800001u);  // payload only in low bits
  EXPECT_TRUE(is_f16_nan(f32_to_f16(nan)));
  EXPECT_TRUE(is_f16_nan(f32_to_f16(signalling)));
  EXPECT_TRUE(is_f16_nan(f32_to_f16(-signalling)));
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(nan)));
  EXPECT_TRUE(is_bf16_nan(f32_to_bf16(signalling)));
  EXPECT_EQ(f32_to_bf16(-signalling) & 0x8000, 0x8000);
}

TEST(DTypeF16, NarrowingMatchesCompilerOnRandomBitPatterns) {
  std::mt19937_64 generator(20240601);
  int mismatches = 0;
  for (int i = 0; i < 10'000'000; ++i) {
    const auto bits = static_cast<std::uint32_t>(generator());
    const float value = std::bit_cast<float>(bits);
    const std::uint16_t ours = f32_to_f16(value);
    const std::uint16_t expected = compiler_f32_to_f16(value);
    const bool agree = std::isnan(value)
                           ? is_f16_nan(ours) && (ours & 0x8000) == (expected & 0x8000)
                           : ours == expected;
    if (!agree && ++mismatches <= 10) {
      ADD_FAILURE() << std::hex << "f32 bits " << bits << ": ours " << ours << ", compiler "
                    << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Reference bf16 rounding through double arithmetic: the nearer of the two neighbours.
std::uint16_t reference_f32_to_bf16(const float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const auto lo = static_cast<std::uint16_t>(bits / 65536);
  const auto hi = static_cast<std::uint16_t>(lo + 1);  // next magnitude, same sign
  const double x = std::fabs(static_cast<double>(value));
  const double a = std::fabs(decode_bf16(lo));
  const double b = (hi & 0x7fff) == 0x7f80 ? std::ldexp(1.0, 128) : std::fabs(decode_bf16(hi));
  if (x - a < b - x) return lo;
  if (x - a > b - x) return hi;
  return (lo % 2 == 0) ? lo : hi;
}

TEST(DTypeBF16, NarrowingMatchesReferenceOnRandomBitPatterns) {
  std::mt19937_64 generator(77);
  int mismatches = 0;
  for (int i = 0; i < 10'000'000; ++i) {
    const auto bits = static_cast<std::uint32_t>(generator());
    const float value = std::bit_cast<float>(bits);
    if (std::isnan(value) || std::isinf(value)) continue;
    const std::uint16_t ours = f32_to_bf16(value);
    const std::uint16_t expected = reference_f32_to_bf16(value);
    if (ours != expected && ++mismatches <= 10) {
      ADD_FAILURE() << std::hex << "f32 bits " << bits << ": ours " << ours << ", reference "
                    << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(DType, NamesSizesAndParsing) {
  for (const DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64,
                        DType::U8, DType::I8}) {
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  }
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::U8), 1u);
  EXPECT_EQ(parse_torch_dtype("bfloat16"), DType::BF16);
  EXPECT_EQ(parse_torch_dtype("float16"), DType::F16);
  EXPECT_EQ(parse_torch_dtype("float32"), DType::F32);
  try {
    parse_dtype("F8_E4M3");
    FAIL() << "F8_E4M3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("F8_E4M3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_torch_dtype("int8"), Error);
  EXPECT_TRUE(is_float(DType::BF16));
  EXPECT_FALSE(is_float(DType::I32));
}

}  // namespace
}  // namespace qshard

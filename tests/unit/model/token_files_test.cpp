// Token files: the raw reader's size message, read_tokens spec parsing, windows drawn exactly as
// an independent MT19937-64 + rejection-sampling computation (Python) says, the FNV-1a hash.
#include <gtest/gtest.h>

#include <fstream>

#include "qshard/core/error.hpp"
#include "qshard/io/tokens.hpp"
#include "tiny_model.hpp"

namespace qshard {
namespace {

TEST(TokenFiles, RawSizeMessageStatesBothRequirements) {
  const test::TempDir dir("qshard-tokens");
  const auto path = dir.path() / "t.i32";
  const std::vector<std::int32_t> ids(12, 1);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), 46);  // 11.5 ids
  try {
    read_tokens_i32(path, 6);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("46 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("multiple of 4"), std::string::npos) << m;
    EXPECT_NE(m.find("row length 6 = 24 bytes"), std::string::npos) << m;
  }
  EXPECT_THROW(read_tokens_i32(dir.path() / "absent.i32", 6), Error);
}

TEST(TokenFiles, SpecPicksRawOrHdf5) {
  const test::TempDir dir("qshard-tokens");
  const TokenSet set{2, 3, {0, 1, 2, 3, 4, 5}};
  write_tokens_hdf5(dir.path() / "a.h5", "tokens", set);
  write_tokens_hdf5(dir.path() / "b.hdf5", "tokens", set);
  write_tokens_hdf5(dir.path() / "c.h5", "eval/rows", set);
  EXPECT_EQ(read_tokens((dir.path() / "a.h5").string(), 0).ids, set.ids);
  EXPECT_EQ(read_tokens((dir.path() / "b.hdf5").string(), 0).ids, set.ids);
  const TokenSet c = read_tokens((dir.path() / "c.h5").string() + ":eval/rows", 0);
  EXPECT_EQ(c.rows, 2);
  EXPECT_EQ(c.cols, 3);
  std::ofstream(dir.path() / "d.i32", std::ios::binary)
      .write(reinterpret_cast<const char*>(set.ids.data()), 24);
  const TokenSet d = read_tokens((dir.path() / "d.i32").string(), 2);
  EXPECT_EQ(d.rows, 3);
  EXPECT_EQ(d.ids, set.ids);
}

TEST(TokenFiles, WindowsArePortable) {
  std::vector<std::int32_t> stream(1000);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::int32_t>(i);
  const TokenSet w = sample_windows(stream, 5, 32, 42);
  const std::int32_t starts[] = {891, 575, 391, 564, 428};  // computed independently
  for (std::int64_t r = 0; r < 5; ++r) EXPECT_EQ(w.row(r)[0], starts[r]) << "row " << r;
  EXPECT_EQ(sample_windows(stream, 3, 1000, 7).row(2)[999], 999);  // one possible start
}

TEST(TokenFiles, HashIsFnv1a64OfLittleEndianBytes) {
  EXPECT_EQ(hash_tokens(TokenSet{}), 0xcbf29ce484222325ull);  // the offset basis
  // FNV-1a 64 of the bytes 61 00 00 00 ("a" then three zero bytes).
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char b : {0x61, 0, 0, 0}) h = (h ^ b) * 0x100000001b3ull;
  EXPECT_EQ(hash_tokens(TokenSet{1, 1, {0x61}}), h);
  EXPECT_NE(hash_tokens(TokenSet{1, 2, {1, 2}}), hash_tokens(TokenSet{1, 2, {2, 1}}));
}

}  // namespace
}  // namespace qshard
